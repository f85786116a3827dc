//! A small HTTP/1.1 client over `TcpStream` (one connection per request,
//! `Connection: close`): a write is acknowledged when its 2xx answer has
//! arrived whole, nothing less.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub token: String,
    pub timeout: Duration,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            token: String::new(),
            timeout: Duration::from_secs(30),
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> std::io::Result<Resp> {
        let mut s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if !self.token.is_empty() {
            head.push_str(&format!("Authorization: {}\r\n", self.token));
        }
        let body = body.unwrap_or(("", b""));
        if !body.0.is_empty() {
            head.push_str(&format!("Content-Type: {}\r\n", body.0));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.1.len()));
        s.write_all(head.as_bytes())?;
        s.write_all(body.1)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse(&raw)
    }

    pub fn get(&self, path: &str) -> std::io::Result<Resp> {
        self.request("GET", path, None)
    }

    pub fn json(&self, method: &str, path: &str, v: &Value) -> std::io::Result<Resp> {
        let b = serde_json::to_vec(v).map_err(std::io::Error::other)?;
        self.request(method, path, Some(("application/json", &b)))
    }

    pub fn multipart(&self, method: &str, path: &str, form: &Multipart) -> std::io::Result<Resp> {
        let (ct, body) = form.finish();
        self.request(method, path, Some((&ct, &body)))
    }
}

fn bad(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string())
}

/// A whole response: status line, headers, body (Content-Length or
/// chunked). A short body is an error: the answer did not arrive.
fn parse(raw: &[u8]) -> std::io::Result<Resp> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no complete response head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut len = None;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            len = v.parse::<usize>().ok();
        } else if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        let mut out = Vec::new();
        let mut p = rest;
        loop {
            let nl = p
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("truncated chunk"))?;
            let size_text = std::str::from_utf8(&p[..nl]).map_err(|_| bad("chunk size"))?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("chunk size"))?;
            p = &p[nl + 2..];
            if size == 0 {
                break;
            }
            if p.len() < size + 2 {
                return Err(bad("truncated chunk"));
            }
            out.extend_from_slice(&p[..size]);
            p = &p[size + 2..];
        }
        out
    } else if let Some(n) = len {
        if rest.len() < n {
            return Err(bad("truncated body"));
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Resp { status, body })
}

/// A multipart/form-data body.
#[derive(Default)]
pub struct Multipart {
    parts: Vec<(String, Option<String>, Vec<u8>)>,
}

const BOUNDARY: &str = "powercutboundary7f3a9c";

impl Multipart {
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.parts
            .push((name.into(), None, value.as_bytes().to_vec()));
        self
    }
    pub fn file(mut self, name: &str, filename: &str, data: &[u8]) -> Self {
        self.parts
            .push((name.into(), Some(filename.into()), data.to_vec()));
        self
    }
    pub fn finish(&self) -> (String, Vec<u8>) {
        let mut b = Vec::new();
        for (name, file, data) in &self.parts {
            b.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            match file {
                Some(f) => b.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={BOUNDARY}"), b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_answers_only() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        assert!(r.ok());
        assert_eq!(r.body, b"ok");
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok").is_err());
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abc");
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Le").is_err());
    }
}
