//! A small blocking JSON-RPC client over HTTP/1.1 keep-alive, for the CLI, the benchmark's
//! load generator and the process tests. No TLS: nodes serve plain HTTP on trusted interfaces.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad RPC URL {0:?}: expected http://host:port")]
    BadUrl(String),
    #[error("cannot reach {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("I/O with {0}: {1}")]
    Io(String, std::io::Error),
    #[error("malformed HTTP response: {0}")]
    Http(String),
    #[error("RPC error {code}: {message}")]
    Rpc { code: i64, message: String },
}

pub struct RpcClient {
    address: String,
    stream: Option<BufReader<TcpStream>>,
    next_id: u64,
    timeout: Duration,
}

impl RpcClient {
    pub fn new(url: &str) -> Result<RpcClient, ClientError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| ClientError::BadUrl(url.into()))?;
        let address = rest.trim_end_matches('/').to_string();
        if address.is_empty() || address.contains('/') || !address.contains(':') {
            return Err(ClientError::BadUrl(url.into()));
        }
        Ok(RpcClient { address, stream: None, next_id: 1, timeout: Duration::from_secs(30) })
    }

    /// How long a call may wait for its answer (30 s unless set).
    pub fn with_timeout(mut self, timeout: Duration) -> RpcClient {
        self.timeout = timeout;
        self
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn connection(&mut self) -> Result<&mut BufReader<TcpStream>, ClientError> {
        if self.stream.is_none() {
            use std::net::ToSocketAddrs;
            let addr = self
                .address
                .to_socket_addrs()
                .map_err(|e| ClientError::Connect(self.address.clone(), e))?
                .next()
                .ok_or_else(|| ClientError::BadUrl(self.address.clone()))?;
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| ClientError::Connect(self.address.clone(), e))?;
            stream.set_read_timeout(Some(self.timeout)).ok();
            stream.set_nodelay(true).ok();
            self.stream = Some(BufReader::new(stream));
        }
        Ok(self.stream.as_mut().expect("set"))
    }

    /// POST one JSON body and read the JSON answer; reconnects once if a kept-alive connection
    /// was closed by the server.
    pub fn post(&mut self, body: &Value) -> Result<Value, ClientError> {
        match self.post_once(body) {
            Err(ClientError::Io(..)) | Err(ClientError::Http(_)) if self.stream.is_some() => {
                self.stream = None;
                self.post_once(body)
            }
            other => other,
        }
    }

    fn post_once(&mut self, body: &Value) -> Result<Value, ClientError> {
        let payload = body.to_string();
        let address = self.address.clone();
        let io = |e| ClientError::Io(address.clone(), e);
        let conn = self.connection()?;
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
            payload.len()
        );
        let stream = conn.get_mut();
        let written = stream.write_all(request.as_bytes()).and_then(|_| stream.write_all(payload.as_bytes()));
        if let Err(e) = written {
            self.stream = None;
            return Err(io(e));
        }
        let result = read_response(conn);
        if result.is_err() {
            self.stream = None;
        }
        let (status, body) = result.map_err(|e| match e {
            ReadError::Io(e) => io(e),
            ReadError::Http(m) => ClientError::Http(m),
        })?;
        if status == 204 {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Http(format!("status {status}, body is not JSON: {e}")))
    }

    /// Call one method; a JSON-RPC error becomes [`ClientError::Rpc`].
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let reply = self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        into_result(reply)
    }

    /// Several calls in one request; results in call order.
    pub fn batch(&mut self, calls: &[(&str, Value)]) -> Result<Vec<Result<Value, ClientError>>, ClientError> {
        let first = self.next_id;
        self.next_id += calls.len() as u64;
        let body: Vec<Value> =
            calls.iter().enumerate().map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": first + i as u64, "method": m, "params": p})).collect();
        let reply = self.post(&Value::Array(body))?;
        let Value::Array(replies) = reply else { return Err(into_result(reply).err().unwrap_or(ClientError::Http("batch answer is not an array".into()))) };
        let mut out: Vec<Option<Result<Value, ClientError>>> = (0..calls.len()).map(|_| None).collect();
        for r in replies {
            let Some(i) = r.get("id").and_then(Value::as_u64).and_then(|id| id.checked_sub(first)).map(|i| i as usize) else { continue };
            if i < out.len() {
                out[i] = Some(into_result(r));
            }
        }
        Ok(out.into_iter().map(|r| r.unwrap_or_else(|| Err(ClientError::Http("missing answer in batch".into())))).collect())
    }
}

fn into_result(reply: Value) -> Result<Value, ClientError> {
    if let Some(err) = reply.get("error") {
        return Err(ClientError::Rpc {
            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: err.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
        });
    }
    Ok(reply.get("result").cloned().unwrap_or(Value::Null))
}

enum ReadError {
    Io(std::io::Error),
    Http(String),
}

/// The longest status, header or chunk-size line, and the most header lines, a response may
/// have: a hostile server (a client names any URL) cannot make us buffer without bound.
const MAX_LINE: u64 = 8 * 1024;
const MAX_HEADERS: usize = 100;

/// One line, at most [`MAX_LINE`] bytes (a longer one is an error).
fn read_bounded_line(conn: &mut BufReader<TcpStream>, line: &mut String) -> Result<usize, ReadError> {
    let n = Read::take(&mut *conn, MAX_LINE).read_line(line).map_err(ReadError::Io)?;
    if n as u64 == MAX_LINE && !line.ends_with('\n') {
        return Err(ReadError::Http("a line longer than 8 KiB".into()));
    }
    Ok(n)
}

fn read_response(conn: &mut BufReader<TcpStream>) -> Result<(u16, Vec<u8>), ReadError> {
    let mut line = String::new();
    if read_bounded_line(conn, &mut line)? == 0 {
        return Err(ReadError::Http("connection closed".into()));
    }
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| ReadError::Http(format!("status line {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    for headers in 0.. {
        if headers > MAX_HEADERS {
            return Err(ReadError::Http("too many header lines".into()));
        }
        line.clear();
        if read_bounded_line(conn, &mut line)? == 0 {
            return Err(ReadError::Http("connection closed in headers".into()));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                length = v.trim().parse::<usize>().ok();
            } else if k == "transfer-encoding" && v.trim().eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    const MAX_BODY: usize = 64 * 1024 * 1024;
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            read_bounded_line(conn, &mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| ReadError::Http("bad chunk size".into()))?;
            if size > MAX_BODY - body.len() {
                return Err(ReadError::Http("body too large".into()));
            }
            let mut chunk = vec![0u8; size + 2];
            conn.read_exact(&mut chunk).map_err(ReadError::Io)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let n = length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(ReadError::Http("body too large".into()));
        }
        body.resize(n, 0);
        conn.read_exact(&mut body).map_err(ReadError::Io)?;
    }
    Ok((status, body))
}
