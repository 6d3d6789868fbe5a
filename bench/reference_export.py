#!/usr/bin/env python3
"""The obvious alternative to `leads`, for the benchmark (bench/run.sh).

A plain sequential export of Chatzuri leads the way the vendors' own
examples do it, using only the standard library: GET one page, parse it,
write its records, ask for the next page, stop at a short page.

    CHATZURI_API_KEY=... python3 bench/reference_export.py BASE_URL AGENT PAGE_SIZE OUTPUT

BASE_URL is e.g. http://127.0.0.1:8787/chatzuri/api/v1 (what `leads sandbox`
prints); OUTPUT is an NDJSON file (one lead per line). It prints the number
of leads written on stdout.

It writes each vendor record as it came (compact JSON, one per line) and
does no normalisation, so it does less work per record than `leads`: the
comparison favours this script.
"""

import json
import os
import sys
import urllib.parse
import urllib.request


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, agent, page_size, output = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    key = os.environ.get("CHATZURI_API_KEY")
    if not key:
        print("reference_export.py: set CHATZURI_API_KEY", file=sys.stderr)
        return 2
    headers = {"Authorization": "Bearer " + key, "Accept": "application/json"}
    written = 0
    page = 1
    with open(output, "w", encoding="utf-8") as out:
        while True:
            query = urllib.parse.urlencode(
                {"agentId": agent, "chatbotId": agent, "page": page, "size": page_size}
            )
            request = urllib.request.Request(f"{base_url}/get-leads?{query}", headers=headers)
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.load(response)
            leads = body["data"] if isinstance(body, dict) else body
            for lead in leads:
                out.write(json.dumps(lead, ensure_ascii=False, separators=(",", ":")))
                out.write("\n")
            written += len(leads)
            if len(leads) < page_size:
                break
            page += 1
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
