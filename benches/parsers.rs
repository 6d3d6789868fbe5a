//! Parser cost per record, for deciding whether a second parser earns its
//! place (`cargo bench --bench parsers`). Prints nanoseconds per record for
//! each parser on the same generated Chatzuri and Robofy pages and NeoAgent
//! windows; medians of 9 runs.

use std::hint::black_box;
use std::time::Instant;

use leads::model::Vendor;
use leads::vendors::{MapContext, chatzuri, neoagent, robofy};

fn page(leads: usize, first: usize) -> Vec<u8> {
    let rows: Vec<String> = (first..first + leads)
        .map(|n| {
            format!(
                r#"{{"id":{n},"created_at":"2025-01-{:02}T10:{:02}:{:02}Z","chatbot_owner_user_id":"usr_{}","chatbot_id":"demo","phone":"+1 555 {n:07}","email":"lead{n}@example.com","name":"Lead Number {n}"}}"#,
                n % 28 + 1,
                n % 60,
                n % 59,
                n % 7
            )
        })
        .collect();
    format!(r#"{{"data":[{}]}}"#, rows.join(",")).into_bytes()
}

/// A NeoAgent `LeadList` window as the sandbox writes it: every documented
/// key, times in the chatbot's zone with microseconds, `SessionID` a number.
fn neoagent_window(leads: usize, first: usize) -> Vec<u8> {
    let rows: Vec<String> = (first..first + leads)
        .map(|n| {
            format!(
                r#"{{"Type":"{}","Name":"Lead Number {n}","Email":"lead{n}@example.com","PhoneNumber":"+1 555 {n:07}","CreateTime":"2025-01-{:02}T02:{:02}:{:02}.{:06}-08:00","Content":"Please call me back about plan {}","SessionID":{},"URI":"https://example.com/pricing/{}","Count":{}}}"#,
                if n % 5 == 0 { "Appointment" } else { "Lead" },
                n % 28 + 1,
                n % 60,
                n % 59,
                n % 1_000_000,
                n % 7,
                31305 + n / 2,
                n % 11,
                n % 3 + 1
            )
        })
        .collect();
    format!(
        r#"{{"Data":[{}],"Version":"1.0.0","Success":true,"Code":200,"Message":""}}"#,
        rows.join(",")
    )
    .into_bytes()
}

/// A NeoAgent `ChatContentHistory` window: one session per element, four
/// messages each.
fn neoagent_history(sessions: usize, first: usize) -> Vec<u8> {
    let rows: Vec<String> = (first..first + sessions)
        .map(|n| {
            format!(
                r#"{{"SessionID":{},"CreateTime":"2025-01-{:02}T02:{:02}:00.{:06}-08:00","URI":"https://example.com/p/{}","Messages":[{{"Type":"AI","Content":"Hello! How can I help?"}},{{"Type":"User","Content":"What does plan {} cost?"}},{{"Type":"AI","Content":"It is {} a month."}},{{"Type":"User","Content":"Thanks, \"great\"."}}]}}"#,
                31305 + n,
                n % 28 + 1,
                n % 60,
                n % 1_000_000,
                n % 11,
                n % 7,
                n % 50 * 10
            )
        })
        .collect();
    format!(
        r#"{{"Data":[{}],"Version":"1.0.0","Success":true,"Code":200,"Message":""}}"#,
        rows.join(",")
    )
    .into_bytes()
}

/// A Robofy lead page as the sandbox serves it: the documented envelope,
/// the form in `lead_data`, the token after the rows.
fn robofy_page(leads: usize, first: usize) -> Vec<u8> {
    let rows: Vec<String> = (first..first + leads)
        .map(|n| {
            let mut form = vec![
                format!(r#"{{"field_name":"Full Name","field_type":"text","field_value":"Lead Number {n}"}}"#),
                format!(r#"{{"field_name":"email","field_type":"email","field_value":"lead{n}@example.com"}}"#),
                format!(r#"{{"field_name":"Mobile","field_type":"tel","field_value":"+1 555 {n:07}"}}"#),
            ];
            if n % 2 == 0 {
                form.push(r#"{"field_name":"company","field_type":"text","field_value":"M\u00fcller & S\u00f6hne GmbH"}"#.to_owned());
            }
            if n % 3 == 0 {
                form.push(r#"{"field_name":"notes","field_type":"textarea","field_value":"Call after 5pm, please.\nAsk for \"Zo\u00eb\""}"#.to_owned());
            }
            format!(
                r#"{{"id":"lead_{n}","created_at":"2025-01-{:02} 10:{:02}:{:02}","source":"chatbot","page_url":"https://shop.example/pricing","ip_address":"203.0.113.{}","lead_data":[{}]}}"#,
                n % 28 + 1,
                n % 60,
                n % 59,
                n % 250,
                form.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"message":"Leads retrieved successfully.","data":{{"report":{{"columns":["id","created_at","source","page_url","ip_address","lead_data"],"rows":[{}],"next_page_token":"eyJwYWdlIjoyfQ=="}}}}}}"#,
        rows.join(",")
    )
    .into_bytes()
}

fn median_ns_per_lead(pages: &[Vec<u8>], per_page: usize, parse: impl Fn(&[u8]) -> usize) -> f64 {
    let mut runs: Vec<f64> = (0..9)
        .map(|_| {
            let started = Instant::now();
            let mut n = 0;
            for body in pages {
                n += parse(black_box(body));
            }
            assert_eq!(n, pages.len() * per_page);
            started.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let per_page = 100;
    let pages: Vec<Vec<u8>> = (0..500).map(|i| page(per_page, i * per_page)).collect();
    let ctx = MapContext {
        vendor: Vendor::Chatzuri,
        agent_id: "demo".to_owned(),
        keep_raw: false,
    };
    let general = median_ns_per_lead(&pages, per_page, |body| {
        chatzuri::parse_leads_general(body, &ctx)
            .unwrap()
            .records
            .len()
    });
    let fast = median_ns_per_lead(&pages, per_page, |body| {
        chatzuri::parse_leads(body, &ctx).unwrap().records.len()
    });
    println!("chatzuri leads, ns per lead (median of 9 runs over 50,000 leads):");
    println!("  general (serde_json::Value tree)  {general:8.0}");
    println!("  fast path (borrowed, streaming)   {fast:8.0}");
    println!("  general / fast                    {:8.2}", general / fast);

    let neo_ctx = MapContext {
        vendor: Vendor::Neoagent,
        agent_id: "demo".to_owned(),
        keep_raw: false,
    };
    let per_window = 1000;
    let windows: Vec<Vec<u8>> = (0..50)
        .map(|i| neoagent_window(per_window, i * per_window))
        .collect();
    let neo_leads = median_ns_per_lead(&windows, per_window, |body| {
        neoagent::parse_leads(body, &neo_ctx).unwrap().records.len()
    });
    let neo_raw_ctx = MapContext {
        keep_raw: true,
        ..neo_ctx.clone()
    };
    let neo_leads_raw = median_ns_per_lead(&windows, per_window, |body| {
        neoagent::parse_leads(body, &neo_raw_ctx)
            .unwrap()
            .records
            .len()
    });
    let histories: Vec<Vec<u8>> = (0..50)
        .map(|i| neoagent_history(per_window / 5, i * per_window / 5))
        .collect();
    let neo_conversations = median_ns_per_lead(&histories, per_window / 5, |body| {
        neoagent::parse_conversations(body, &neo_ctx)
            .unwrap()
            .records
            .len()
    });
    println!(
        "neoagent, ns per record (median of 9 runs; 50 windows of 1,000 leads / 200 sessions):"
    );
    println!("  leads                             {neo_leads:8.0}");
    println!("  leads with --raw                  {neo_leads_raw:8.0}");
    println!("  conversations (4 messages)        {neo_conversations:8.0}");

    let robofy_pages: Vec<Vec<u8>> = (0..500)
        .map(|i| robofy_page(per_page, i * per_page))
        .collect();
    let robofy_ctx = MapContext {
        vendor: Vendor::Robofy,
        agent_id: "demo".to_owned(),
        keep_raw: false,
    };
    let robofy_leads = median_ns_per_lead(&robofy_pages, per_page, |body| {
        robofy::parse_leads(body, &robofy_ctx, None)
            .unwrap()
            .records
            .len()
    });
    let robofy_scan = median_ns_per_lead(&robofy_pages, per_page, |body| {
        assert!(robofy::next_page_token(body).is_some());
        per_page
    });
    println!("robofy leads, ns per lead (median of 9 runs over 50,000 leads):");
    println!("  parse_leads                       {robofy_leads:8.0}");
    println!("  next_page_token (pre-scan)        {robofy_scan:8.0}");

    // Timestamps as Chatzuri (RFC 3339), Robofy (zone-less, space) and
    // NeoAgent (offset, microseconds) send them.
    let stamps: Vec<String> = (0..300_000)
        .map(|n| match n % 3 {
            0 => format!("2025-01-{:02}T10:{:02}:{:02}Z", n % 28 + 1, n % 60, n % 59),
            1 => format!("2025-01-{:02} 10:{:02}:{:02}", n % 28 + 1, n % 60, n % 59),
            _ => format!(
                "2025-01-{:02}T02:{:02}:00.{:06}-08:00",
                n % 28 + 1,
                n % 60,
                n
            ),
        })
        .collect();
    let time = |parse: fn(&str) -> Option<chrono::DateTime<chrono::Utc>>| {
        let mut runs: Vec<f64> = (0..9)
            .map(|_| {
                let started = Instant::now();
                let parsed = stamps
                    .iter()
                    .filter(|s| parse(black_box(s)).is_some())
                    .count();
                assert_eq!(parsed, stamps.len());
                started.elapsed().as_nanos() as f64 / stamps.len() as f64
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        runs[runs.len() / 2]
    };
    let chrono_only = time(leads::time::parse_with_chrono);
    let layered = time(leads::time::parse_vendor_timestamp);
    println!("vendor timestamps, ns each (median of 9 runs over 300,000, three layouts):");
    println!("  chrono format strings in turn     {chrono_only:8.0}");
    println!("  fixed-layout reader first         {layered:8.0}");
    println!(
        "  chrono / fixed                    {:8.2}",
        chrono_only / layered
    );
}
