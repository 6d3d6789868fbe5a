//! One scripted fake vendor for the tests: a raw HTTP/1.1 server on a
//! loopback socket (one request per connection), driven by an async closure
//! that turns each request into an [`Answer`]. It produces what wiremock
//! cannot: connections that reset mid-body, bodies shorter than their
//! `Content-Length`, connections closed without an answer, and answers that
//! hold the connection open.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request as the fake vendor received it.
pub struct Request {
    /// 0 for the first connection the server accepted, then 1, 2, ...
    pub connection: usize,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the fake vendor answers one request.
pub enum Answer {
    /// A complete answer after `delay`; `Content-Length` is the body's.
    Http {
        status: u16,
        content_type: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        delay: Duration,
    },
    /// Headers with the full length, half the body, then (30 ms later) a
    /// connection reset.
    Reset(Vec<u8>),
    /// Headers announcing `missing` bytes more than the body, the body, then
    /// a close.
    ShortBody { body: Vec<u8>, missing: usize },
    /// These bytes as they are, then a close after `hold`.
    Raw { bytes: Vec<u8>, hold: Duration },
    /// Close the connection without a byte of answer.
    Silent,
    /// A 200 with the full `Content-Length`, the body sent `piece` bytes at
    /// a time with `pause` between pieces.
    Trickle {
        body: Vec<u8>,
        piece: usize,
        pause: Duration,
    },
}

impl Answer {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Answer {
        Answer::Http {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: serde_json::to_vec(body).expect("serialisable"),
            delay: Duration::ZERO,
        }
    }
}

/// A running fake vendor.
pub struct Fake {
    pub base: String,
    connections: Arc<AtomicUsize>,
}

impl Fake {
    /// How many connections the server accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Starts a fake vendor on the current tokio runtime; `answer` is called
/// once a request per connection.
pub async fn serve<F, Fut>(answer: F) -> Fake
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let connection = counter.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let _ = serve_one(stream, connection, &*answer).await;
            });
        }
    });
    Fake { base, connections }
}

async fn serve_one<F, Fut>(
    mut stream: tokio::net::TcpStream,
    connection: usize,
    answer: &F,
) -> std::io::Result<()>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Answer>,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let (mut length, mut authorization) = (0usize, None);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let url = url::Url::parse(&format!("http://127.0.0.1{target}")).expect("a request target");
    let request = Request {
        connection,
        path: url.path().to_owned(),
        query: url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        authorization,
        body: buf[head_end..head_end + length].to_vec(),
    };
    match answer(request).await {
        Answer::Http {
            status,
            content_type,
            headers,
            body,
            delay,
        } => {
            tokio::time::sleep(delay).await;
            stream
                .write_all(&head_bytes(status, content_type, &headers, body.len()))
                .await?;
            stream.write_all(&body).await?;
            stream.shutdown().await?;
        }
        Answer::Reset(body) => {
            stream
                .write_all(&head_bytes(200, "application/json", &[], body.len()))
                .await?;
            stream.write_all(&body[..body.len() / 2]).await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_millis(30)).await;
            #[allow(deprecated)]
            stream.set_linger(Some(Duration::ZERO))?;
            drop(stream);
        }
        Answer::ShortBody { body, missing } => {
            stream
                .write_all(&head_bytes(
                    200,
                    "application/json",
                    &[],
                    body.len() + missing,
                ))
                .await?;
            stream.write_all(&body).await?;
            stream.shutdown().await?;
        }
        Answer::Raw { bytes, hold } => {
            stream.write_all(&bytes).await?;
            stream.flush().await?;
            tokio::time::sleep(hold).await;
            drop(stream);
        }
        Answer::Silent => drop(stream),
        Answer::Trickle { body, piece, pause } => {
            stream
                .write_all(&head_bytes(200, "application/json", &[], body.len()))
                .await?;
            for part in body.chunks(piece.max(1)) {
                stream.write_all(part).await?;
                stream.flush().await?;
                tokio::time::sleep(pause).await;
            }
            stream.shutdown().await?;
        }
    }
    Ok(())
}

fn head_bytes(
    status: u16,
    content_type: &str,
    extra: &[(&'static str, String)],
    length: usize,
) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n"
    );
    for (name, value) in extra {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

// ---------------------------------------------------------------------------
// Pages the tests share
// ---------------------------------------------------------------------------

/// A NeoAgent `LeadList` answer: the success envelope around `data`.
pub fn na_envelope(data: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({ "Data": data, "Version": "1.0.0", "Success": true, "Code": 200, "Message": "" })
}
