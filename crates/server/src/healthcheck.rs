//! `qdrant healthcheck`: a dependency-free HTTP/1.0 probe of `/readyz`, so a container image
//! needs no shell or curl for its HEALTHCHECK.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use crate::settings::Settings;

pub fn run(url: Option<&str>, settings: &Settings) -> ExitCode {
    let default = format!("http://127.0.0.1:{}", settings.service.http_port);
    let url = url.unwrap_or(&default);
    match probe(url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qdrant healthcheck: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs are supported")?;
    let host_port = rest.split('/').next().unwrap_or(rest);
    let addr = host_port.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("address did not resolve")?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    write!(s, "GET /readyz HTTP/1.0\r\nHost: {host_port}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let status = resp.split_whitespace().nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        Err(format!("not ready (HTTP {status})"))
    }
}
