//! The userland proxy for published TCP ports on IPv6 loopback.
//!
//! Published ports are DNAT rules (see [`crate::nft`]), which serve every local address
//! except `::1`: IPv6 has no `route_localnet`, so a packet from `::1` can never leave `lo`
//! for a bridge, and the `output` chain leaves `::1` alone. docker runs `docker-proxy` per
//! port for this; berth turns the socket that already reserves the IPv6 host port into a
//! listener and forwards what reaches it to the container. Only connections the kernel did
//! not DNAT arrive there (those to `::1`; the others were redirected before routing), so the
//! fast path stays in the kernel. The listener is the reservation: dropping the proxy
//! closes it and frees the port, and its connections end with it.
//!
//! Accepted connections close with `SO_LINGER` 0 (a reset once the data is through): a
//! normal close by our side would leave a TIME_WAIT socket on the published port, and the
//! reservations (no `SO_REUSEADDR`, on purpose: that is what makes a second `-p` of a port
//! fail) could not take the port again for a minute after the container is gone.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::task::JoinSet;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("listen on the reserved socket for {target}: {source}")]
    Listen {
        target: SocketAddr,
        source: std::io::Error,
    },
}

/// A running proxy; dropping it stops the listener and every connection.
#[derive(Debug)]
pub struct TcpProxy {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpProxy {
    /// Listens on `socket` (bound, not yet listening) and forwards each connection to
    /// `target`. Must be called inside a tokio runtime.
    pub fn spawn(socket: OwnedFd, target: SocketAddr) -> Result<TcpProxy, ProxyError> {
        let err = |source| ProxyError::Listen { target, source };
        rustix::net::listen(&socket, 128).map_err(|e| err(e.into()))?;
        let std = std::net::TcpListener::from(socket);
        std.set_nonblocking(true).map_err(err)?;
        let listener = tokio::net::TcpListener::from_std(std).map_err(err)?;
        let task = tokio::spawn(async move {
            // Owned by this task, so aborting it aborts the connections too.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((inbound, _)) => {
                            conns.spawn(forward(inbound, target));
                        }
                        Err(e) => {
                            // EMFILE and the like: back off instead of spinning.
                            tracing::warn!(%target, error = %e, "proxy accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(TcpProxy { task })
    }
}

async fn forward(mut inbound: tokio::net::TcpStream, target: SocketAddr) {
    if let Err(e) = rustix::net::sockopt::set_socket_linger(&inbound, Some(Duration::ZERO)) {
        tracing::debug!(%target, error = %e, "proxy could not set SO_LINGER");
    }
    match tokio::net::TcpStream::connect(target).await {
        Ok(mut outbound) => {
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            if let Err(e) = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
                tracing::debug!(%target, error = %e, "proxied connection ended");
            }
        }
        // Dropping `inbound` resets the client, as docker-proxy does.
        Err(e) => tracing::debug!(%target, error = %e, "proxy could not reach the container"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn bound_socket() -> (OwnedFd, SocketAddr) {
        let fd = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::STREAM,
            None,
        )
        .unwrap();
        rustix::net::bind(&fd, &"127.0.0.1:0".parse::<SocketAddr>().unwrap()).unwrap();
        let addr = SocketAddr::try_from(rustix::net::getsockname(&fd).unwrap()).unwrap();
        (fd, addr)
    }

    #[tokio::test]
    async fn forwards_both_ways_and_frees_the_port_when_dropped() {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = upstream.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let (fd, addr) = bound_socket();
        let proxy = TcpProxy::spawn(fd, target).unwrap();
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        echo.await.unwrap();
        drop(proxy);
        // The abort lands at the task's next poll; the port is free once it has.
        let mut freed = false;
        for _ in 0..50 {
            if std::net::TcpListener::bind(addr).is_ok() {
                freed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(freed, "port {addr} still held after the proxy was dropped");
    }
}
