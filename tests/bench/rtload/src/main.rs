//! Realtime load client for the side-by-side benchmark (PocketBase's SSE
//! protocol, so the same client drives keepd and PocketBase).
//!
//!   rtload idle ADDR N
//!       opens N realtime streams, waits for each one's PB_CONNECT, prints
//!       `ready <opened> <failed>` and holds them until stdin closes.
//!   rtload latency ADDR SUBS WRITES COLLECTION TOKEN [SUB_TOKENS_FILE]
//!       opens SUBS streams subscribed to `COLLECTION/*` (as guests, or, with
//!       SUB_TOKENS_FILE, each as one of its tokens, one per line, in turn),
//!       then creates WRITES records with TOKEN one after another (20 ms
//!       apart) and prints JSON (see `Report`).
//!
//! The commit instant is not on the wire (and neither server puts it
//! there): a write commits after its request is sent and before its
//! response arrives, so for every event
//!   arrival − response ≤ arrival − commit ≤ arrival − sent,
//! and both bounds are reported, per delivery and per write (its last
//! delivery), with the write's round trip (the width of the bracket).
//! Arrival is stamped when the read that completed the event's frame
//! returned, before the frame is parsed.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

type Res<T> = Result<T, String>;

/// One SSE stream: the socket and the decoder state.
struct Stream {
    sock: TcpStream,
    chunked: bool,
    raw: Vec<u8>,
    body: Vec<u8>,
}

impl Stream {
    async fn open(addr: &str) -> Res<(Stream, String)> {
        let mut sock = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let _ = sock.set_nodelay(true);
        let req = format!(
            "GET /api/realtime HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        );
        sock.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            let mut tmp = [0u8; 4096];
            let n = sock.read(&mut tmp).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed before the response head".into());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return Err(head.lines().next().unwrap_or_default().to_string());
        }
        let mut s = Stream {
            sock,
            chunked: head.contains("transfer-encoding: chunked"),
            raw: buf[head_end + 4..].to_vec(),
            body: Vec::new(),
        };
        let (event, data, _) = s.next_event().await?;
        if event != "PB_CONNECT" {
            return Err(format!("first event {event}"));
        }
        let id = between(&data, "\"clientId\":\"", "\"")
            .ok_or("no clientId")?
            .to_string();
        Ok((s, id))
    }

    /// Moves decoded body bytes from `raw` to `body`.
    fn decode(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            let Some(eol) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size_hex = String::from_utf8_lossy(&self.raw[..eol]);
            let Ok(size) = usize::from_str_radix(size_hex.trim(), 16) else {
                return;
            };
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..eol + 2 + size + 2);
        }
    }

    /// The next event (skipping comments): (event name, data, when the
    /// read that completed its frame returned).
    async fn next_event(&mut self) -> Res<(String, String, Instant)> {
        let mut at = Instant::now();
        loop {
            self.decode();
            if let Some(end) = find(&self.body, b"\n\n") {
                let frame: Vec<u8> = self.body.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&frame);
                let mut event = String::new();
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = v.to_string();
                    }
                }
                if event.is_empty() && data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Ok((event, data, at));
            }
            let mut tmp = [0u8; 16384];
            let n = self.sock.read(&mut tmp).await.map_err(|e| e.to_string())?;
            at = Instant::now();
            if n == 0 {
                return Err("stream closed".into());
            }
            self.raw.extend_from_slice(&tmp[..n]);
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let i = s.find(a)? + a.len();
    let j = s[i..].find(b)? + i;
    Some(&s[i..j])
}

/// A keep-alive HTTP/1.1 connection for JSON requests.
struct Http {
    sock: TcpStream,
    addr: String,
}

impl Http {
    async fn connect(addr: &str) -> Res<Http> {
        let sock = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let _ = sock.set_nodelay(true);
        Ok(Http {
            sock,
            addr: addr.to_string(),
        })
    }

    async fn post(&mut self, path: &str, body: &str, token: &str) -> Res<(u16, String)> {
        let auth = if token.is_empty() {
            String::new()
        } else {
            format!("Authorization: {token}\r\n")
        };
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.sock
            .write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            let mut tmp = [0u8; 4096];
            let n = self.sock.read(&mut tmp).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed".into());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < len {
            let mut tmp = [0u8; 4096];
            let n = self.sock.read(&mut tmp).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed".into());
            }
            body.extend_from_slice(&tmp[..n]);
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Opens `n` streams, at most 256 handshakes at a time.
async fn open_many(addr: &str, n: usize) -> (Vec<(Stream, String)>, usize) {
    let sem = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let sem = sem.clone();
        let addr = addr.to_string();
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            Stream::open(&addr).await
        }));
    }
    let mut ok = Vec::with_capacity(n);
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => ok.push(s),
            Ok(Err(e)) => {
                if failed == 0 {
                    eprintln!("rtload: open failed: {e}");
                }
                failed += 1;
            }
            Err(_) => failed += 1,
        }
    }
    (ok, failed)
}

async fn idle(addr: &str, n: usize) -> Res<()> {
    let t0 = Instant::now();
    let (streams, failed) = open_many(addr, n).await;
    println!(
        "ready {} {} {:.2}",
        streams.len(),
        failed,
        t0.elapsed().as_secs_f64()
    );
    // Hold until stdin closes.
    let mut stdin = tokio::io::stdin();
    let mut b = [0u8; 64];
    while stdin.read(&mut b).await.map(|n| n > 0).unwrap_or(false) {}
    drop(streams);
    Ok(())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Prints `what` and waits for a line on stdin.
async fn handshake(what: &str) -> Res<()> {
    let mut out = tokio::io::stdout();
    out.write_all(format!("{what}\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    out.flush().await.map_err(|e| e.to_string())?;
    let mut stdin = tokio::io::stdin();
    let mut b = [0u8; 1];
    loop {
        match stdin.read(&mut b).await {
            Ok(0) => return Err("stdin closed".into()),
            Ok(_) if b[0] == b'\n' => return Ok(()),
            Ok(_) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// p50 / p99 / max of a sample, in ms.
fn dist(xs: &mut [f64]) -> String {
    xs.sort_by(f64::total_cmp);
    format!(
        "{{\"p50\":{:.3},\"p99\":{:.3},\"max\":{:.3}}}",
        pct(xs, 0.50),
        pct(xs, 0.99),
        xs.last().copied().unwrap_or(f64::NAN)
    )
}

fn ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1000.0
    } else {
        -((b - a).as_secs_f64() * 1000.0)
    }
}

async fn latency(
    addr: &str,
    subs: usize,
    writes: usize,
    coll: &str,
    token: &str,
    sub_tokens: &[String],
) -> Res<()> {
    let (streams, failed) = open_many(addr, subs).await;
    if failed > 0 {
        return Err(format!("{failed} of {subs} streams failed to open"));
    }
    let mut http = Http::connect(addr).await?;
    for (k, (_, id)) in streams.iter().enumerate() {
        let body = format!("{{\"clientId\":\"{id}\",\"subscriptions\":[\"{coll}/*\"]}}");
        let auth = if sub_tokens.is_empty() {
            ""
        } else {
            sub_tokens[k % sub_tokens.len()].as_str()
        };
        let (st, b) = http.post("/api/realtime", &body, auth).await?;
        if st != 204 {
            return Err(format!("subscribe: {st} {b}"));
        }
    }
    let t0 = Instant::now();
    // RTLOAD_GRACE_S: how long after the writes events may still come
    // (default 15 s; longer for a server under callgrind).
    let grace = std::env::var("RTLOAD_GRACE_S")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(15);
    let deadline = Duration::from_millis(writes as u64 * 20 + grace * 1000);
    // Each subscriber records (write index, arrival) for the events it gets.
    let mut readers = Vec::with_capacity(subs);
    for (mut s, _) in streams {
        readers.push(tokio::spawn(async move {
            let mut got: Vec<(usize, Instant)> = Vec::with_capacity(writes);
            while got.len() < writes {
                let left = deadline.saturating_sub(t0.elapsed());
                match tokio::time::timeout(left, s.next_event()).await {
                    Ok(Ok((_, data, at))) => {
                        if let Some(i) = between(&data, "\"title\":\"rt-", "\"")
                            .and_then(|v| v.parse::<usize>().ok())
                        {
                            got.push((i, at));
                        }
                    }
                    _ => break,
                }
            }
            got
        }));
    }
    // Give the subscriptions a moment, then write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // RTLOAD_SYNC: say `writing` before the first write and `delivered`
    // once every subscriber has every event (before the streams close), each
    // time waiting for a line on stdin: the caller reads the server's CPU
    // time at both.
    let sync = std::env::var_os("RTLOAD_SYNC").is_some();
    if sync {
        handshake("writing").await?;
    }
    let mut sent = Vec::with_capacity(writes);
    let mut answered = Vec::with_capacity(writes);
    for i in 0..writes {
        let body = format!("{{\"title\":\"rt-{i}\",\"n\":{i},\"flag\":true}}");
        let ts = Instant::now();
        let (st, b) = http
            .post(&format!("/api/collections/{coll}/records"), &body, token)
            .await?;
        let tr = Instant::now();
        if st != 200 {
            return Err(format!("create: {st} {b}"));
        }
        sent.push(ts);
        answered.push(tr);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut got_all = Vec::with_capacity(subs);
    for r in readers {
        got_all.push(r.await.map_err(|e| e.to_string())?);
    }
    if sync {
        handshake("delivered").await?;
    }
    let mut from_resp = Vec::with_capacity(writes * subs);
    let mut from_sent = Vec::with_capacity(writes * subs);
    // Per write: its first and last arrival and how many arrived.
    let mut first: Vec<Option<Instant>> = vec![None; writes];
    let mut last: Vec<Option<Instant>> = vec![None; writes];
    let mut count = vec![0usize; writes];
    let mut received = 0usize;
    for got in got_all {
        for (i, at) in got {
            if i >= writes {
                continue;
            }
            received += 1;
            count[i] += 1;
            from_resp.push(ms(at, answered[i]));
            from_sent.push(ms(at, sent[i]));
            first[i] = Some(first[i].map_or(at, |f| f.min(at)));
            last[i] = Some(last[i].map_or(at, |l| l.max(at)));
        }
    }
    // Per-write figures over the writes every subscriber got.
    let (mut last_resp, mut last_sent, mut first_resp, mut spread, mut rtt) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..writes {
        rtt.push(ms(answered[i], sent[i]));
        if let (Some(f), Some(l), true) = (first[i], last[i], count[i] == subs) {
            last_resp.push(ms(l, answered[i]));
            last_sent.push(ms(l, sent[i]));
            first_resp.push(ms(f, answered[i]));
            spread.push(ms(l, f));
        }
    }
    let complete = last_resp.len();
    println!(
        "{{\"subscribers\":{subs},\"authenticated\":{},\"writes\":{writes},\"received\":{received},\
         \"missing\":{},\"complete_writes\":{complete},\
         \"delivery_from_response\":{},\"delivery_from_sent\":{},\
         \"last_from_response\":{},\"last_from_sent\":{},\"first_from_response\":{},\
         \"first_to_last\":{},\"write_round_trip\":{}}}",
        !sub_tokens.is_empty(),
        writes * subs - received,
        dist(&mut from_resp),
        dist(&mut from_sent),
        dist(&mut last_resp),
        dist(&mut last_sent),
        dist(&mut first_resp),
        dist(&mut spread),
        dist(&mut rtt),
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rtload: {e}");
            std::process::exit(2);
        }
    };
    let num = |i: usize| args.get(i).and_then(|v| v.parse::<usize>().ok());
    let r = rt.block_on(async {
        match args.get(1).map(String::as_str) {
            Some("idle") => match (args.get(2), num(3)) {
                (Some(a), Some(n)) => idle(a, n).await,
                _ => Err("usage: rtload idle ADDR N".into()),
            },
            Some("latency") => match (args.get(2), num(3), num(4), args.get(5), args.get(6)) {
                (Some(a), Some(s), Some(w), Some(c), Some(t)) => {
                    let sub_tokens = match args.get(7) {
                        Some(f) => match std::fs::read_to_string(f) {
                            Ok(text) => text
                                .lines()
                                .map(str::trim)
                                .filter(|l| !l.is_empty())
                                .map(String::from)
                                .collect(),
                            Err(e) => return Err(format!("{f}: {e}")),
                        },
                        None => Vec::new(),
                    };
                    latency(a, s, w, c, t, &sub_tokens).await
                }
                _ => Err(
                    "usage: rtload latency ADDR SUBS WRITES COLLECTION TOKEN [SUB_TOKENS_FILE]"
                        .into(),
                ),
            },
            _ => Err("usage: rtload idle|latency ...".into()),
        }
    });
    if let Err(e) = r {
        eprintln!("rtload: {e}");
        std::process::exit(1);
    }
}
