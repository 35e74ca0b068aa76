//! The receive loop of one UDP socket: read a datagram, answer it at once, then drain what else
//! is already queued before waiting again. Nothing is queued in the service: a datagram is
//! answered before the next is read, so the kernel's receive buffer is the only queue (full, it
//! drops), and one reused buffer per socket holds each request and each response.

use std::io;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::net::UdpSocket;
use tracing::debug;

use super::{MAX_DATAGRAM, Outcome};
use crate::metrics::bump;
use crate::routes::Shared;
use crate::swarm::PeerList;

/// Datagrams answered from the socket's queue before going back to the runtime.
const BATCH: usize = 64;

/// Serves `socket` until the future is dropped (at shutdown); returns only on a failure to read
/// that is not about one datagram.
pub(crate) async fn serve(socket: UdpSocket, shared: Arc<Shared>) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    let mut peers = PeerList::default();
    let mut rng = SmallRng::from_entropy();
    loop {
        let mut got = socket.recv_from(&mut buf).await;
        // One clock read per batch: the batch is microseconds long, ids live for minutes.
        let now_ms = shared.started.elapsed().as_millis() as u64;
        for read in 1..=BATCH {
            match got {
                Ok((len, source)) => {
                    let request = buf.get(..len).unwrap_or_default();
                    let outcome = shared
                        .app
                        .udp(request, source, now_ms, &mut rng, &mut peers, &mut out);
                    if outcome != Outcome::Silent {
                        // Backpressure, not a queue: waits only while the kernel's send buffer
                        // is full.
                        if let Err(e) = socket.send_to(&out, source).await {
                            debug!(%source, error = %e, "UDP send");
                            bump(&shared.app.metrics.udp_dropped);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Linux reports ICMP errors of earlier sends on some reads; nothing to answer.
                Err(e) if transient(&e) => debug!(error = %e, "UDP receive"),
                Err(e) => return Err(e),
            }
            if read == BATCH {
                break; // back to the runtime; what is queued waits in the kernel
            }
            got = socket.try_recv_from(&mut buf);
        }
    }
}

/// Errors a read can return that concern one datagram or peer, not the socket.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::Interrupted
    )
}
