//! A minimal blocking HTTP/1.0 GET for scenario tests (tracker `/stats`, `/scrape`, ...).
//!
//! HTTP/1.0 with `Connection: close` means the body ends when the server closes the connection
//! (or at `Content-Length`), so no chunked decoding is needed. Not a general HTTP client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// Largest response read, head and body together.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// A response: status code, headers (names lower-cased) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET <path_and_query>` from `addr`; the whole exchange must finish within `timeout`.
pub fn http_get(addr: SocketAddr, path_and_query: &str, timeout: Duration) -> Result<HttpResponse> {
    ensure!(
        path_and_query.starts_with('/'),
        "path must start with '/': {path_and_query:?}"
    );
    let deadline = Instant::now() + timeout;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
    let request =
        format!("GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        ensure!(
            !left.is_zero(),
            "GET {path_and_query} from {addr}: no full response in {timeout:?}"
        );
        stream.set_read_timeout(Some(left))?;
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("GET {path_and_query} from {addr}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        ensure!(
            raw.len() <= MAX_RESPONSE,
            "response over {MAX_RESPONSE} bytes"
        );
        if let Some(response) = complete_response(&raw)? {
            return Ok(response);
        }
    }
    parse(&raw)
}

/// The response once `raw` holds all of it by `Content-Length`; `None` if more may come.
fn complete_response(raw: &[u8]) -> Result<Option<HttpResponse>> {
    let Some(head_end) = find_head_end(raw) else {
        return Ok(None);
    };
    let response = parse(raw)?;
    let Some(len) = response.header("content-length") else {
        return Ok(None);
    };
    let len: usize = len.trim().parse().context("bad Content-Length")?;
    Ok((raw.len() >= head_end + len).then_some(response))
}

fn find_head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parses a whole response (status line, headers, body up to Content-Length or the end).
fn parse(raw: &[u8]) -> Result<HttpResponse> {
    let Some(head_end) = find_head_end(raw) else {
        bail!(
            "response has no end of headers: {:?}",
            String::from_utf8_lossy(raw)
        );
    };
    let head = std::str::from_utf8(&raw[..head_end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        bail!("bad status line {status_line:?}");
    };
    ensure!(
        version.starts_with("HTTP/1."),
        "not HTTP/1.x: {status_line:?}"
    );
    let status = code
        .parse()
        .with_context(|| format!("bad status {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[head_end..].to_vec();
    if let Some((_, len)) = headers.iter().find(|(n, _)| n == "content-length") {
        let len: usize = len.parse().context("bad Content-Length")?;
        ensure!(
            body.len() >= len,
            "body {} bytes, Content-Length {len}",
            body.len()
        );
        body.truncate(len);
    }
    ensure!(
        !headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")),
        "chunked responses are not supported"
    );
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_status_headers_and_body() {
        let r =
            parse(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabcdef").unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.header("x-a"), Some("b"));
        assert_eq!(r.body, b"abc");
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn gets_from_a_loopback_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let n = s.read(&mut req).unwrap();
            assert!(req[..n].starts_with(b"GET /stats?x=1 HTTP/1.0\r\n"));
            s.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello").unwrap();
        });
        let r = http_get(addr, "/stats?x=1", Duration::from_secs(10)).unwrap();
        server.join().unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    }
}
