//! TCP socket probes (upstream's `pkg/probe/tcp/tcp.go`): a connection within the
//! timeout is a success and is closed at once; any error (refused, timeout, no route) is
//! a failure with the error as its output.

use std::time::Duration;

use super::Outcome;

/// Connects to `host:port`.
pub async fn probe(host: &str, port: u16, timeout: Duration) -> Outcome {
    let addr = join_host_port(host, port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr.as_str())).await {
        Ok(Ok(conn)) => {
            drop(conn);
            Outcome::Success(String::new())
        }
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: {}", go_io_error(&e))),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// An I/O error as Go's net package words it (`connect: connection refused`), the text
/// users know from upstream's probe events.
pub fn go_io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        ErrorKind::TimedOut => "i/o timeout".into(),
        ErrorKind::HostUnreachable => "connect: no route to host".into(),
        ErrorKind::NetworkUnreachable => "connect: network is unreachable".into(),
        ErrorKind::ConnectionReset => "read: connection reset by peer".into(),
        _ => {
            let s = e.to_string();
            // Drop Rust's " (os error N)" suffix; Go prints the bare strerror, lowercase.
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            s.to_lowercase()
        }
    }
}

/// Go's `net.JoinHostPort`: IPv6 literals in brackets.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(go_io_error(&refused), "connect: connection refused");
        let other = std::io::Error::from_raw_os_error(13);
        assert_eq!(go_io_error(&other), "permission denied");
    }
}
