//! Command-line flags of `swarm-tracker`, kept in the library so that anything embedding the
//! tracker can offer the same flags, and the listening-socket setup.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use socket2::{Domain, Socket, Type};

use crate::Config;
use crate::rate_limit::RateLimit;

/// A BitTorrent tracker: HTTP (announce, scrape, stats, metrics) and UDP (BEP 15) on one port.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Address to listen on, TCP for HTTP and UDP for BEP 15; repeat for several (e.g.
    /// 0.0.0.0:6969 and [::]:6969).
    #[arg(long = "listen", default_value = "0.0.0.0:6969")]
    pub listen: Vec<SocketAddr>,
    /// Do not serve UDP (BEP 15).
    #[arg(long, conflicts_with = "no_http")]
    pub no_udp: bool,
    /// Do not serve HTTP (announce, scrape, stats, metrics).
    #[arg(long)]
    pub no_http: bool,
    /// UDP sockets per address, sharing its port (SO_REUSEPORT), each with its own receive
    /// loop [default: one per core].
    #[arg(long)]
    pub udp_sockets: Option<usize>,
    /// Seconds clients wait between announces.
    #[arg(long, default_value_t = 1800)]
    pub interval: u32,
    /// Seconds clients must wait at least.
    #[arg(long, default_value_t = 900)]
    pub min_interval: u32,
    /// Seconds after its last announce that a peer is dropped [default: 1.5 x interval].
    #[arg(long)]
    pub peer_expiry: Option<u64>,
    /// Seconds between sweeps of expired peers.
    #[arg(long, default_value_t = 60)]
    pub sweep_every: u64,
    /// Peers returned when the client does not say.
    #[arg(long, default_value_t = 50)]
    pub numwant_default: u32,
    /// Most peers returned to one announce.
    #[arg(long, default_value_t = 200)]
    pub numwant_max: u32,
    /// Most torrents tracked.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_swarms: usize,
    /// Most peers in one torrent.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_peers_per_swarm: usize,
    /// Most peers overall.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_peers: usize,
    /// Most info-hashes in one scrape.
    #[arg(long, default_value_t = 100)]
    pub max_scrape: usize,
    /// Longest query string accepted (bytes).
    #[arg(long, default_value_t = 8192)]
    pub max_query_len: usize,
    /// Most bytes a client may send before it is answered; beyond, it is disconnected.
    #[arg(long, default_value_t = 32768)]
    pub max_request_bytes: usize,
    /// Seconds a connection has for each request (and to read each response).
    #[arg(long, default_value_t = 15)]
    pub request_timeout: u64,
    /// Most open connections per listener.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Honour the `ip` parameter of announces (enables address spoofing).
    #[arg(long)]
    pub accept_ip_param: bool,
    /// A reverse proxy whose X-Forwarded-For is trusted; repeatable.
    #[arg(long = "trusted-proxy")]
    pub trusted_proxies: Vec<IpAddr>,
    /// Announces allowed per minute per client address (IPv6: per /64); 0 turns the limit off.
    #[arg(long, default_value_t = 0)]
    pub announce_rate: u32,
    /// Announces a client address may make in a burst above --announce-rate.
    #[arg(long, default_value_t = 30)]
    pub announce_burst: u32,
    /// Most client addresses the rate limiter tracks at once.
    #[arg(long, default_value_t = 1_000_000)]
    pub rate_tracked: usize,
    /// Log filter (e.g. info, debug, tracker=trace); RUST_LOG is used when this is absent.
    #[arg(long)]
    pub log_level: Option<String>,
}

impl Args {
    /// The service configuration these flags describe.
    pub fn config(&self) -> Config {
        let mut config = Config {
            interval: self.interval,
            min_interval: self.min_interval,
            numwant_default: self.numwant_default,
            numwant_max: self.numwant_max,
            sweep_every: Duration::from_secs(self.sweep_every),
            max_scrape: self.max_scrape,
            max_query_len: self.max_query_len,
            max_request_bytes: self.max_request_bytes,
            request_timeout: Duration::from_secs(self.request_timeout),
            max_connections: self.max_connections,
            accept_ip_param: self.accept_ip_param,
            trusted_proxies: self.trusted_proxies.clone(),
            rate_limit: (self.announce_rate > 0).then_some(RateLimit {
                per_minute: self.announce_rate,
                burst: self.announce_burst,
                max_tracked: self.rate_tracked,
            }),
            ..Config::default()
        };
        config.limits.max_swarms = self.max_swarms;
        config.limits.max_peers_per_swarm = self.max_peers_per_swarm;
        config.limits.max_peers = self.max_peers;
        config.limits.peer_expiry_secs =
            self.peer_expiry.unwrap_or(u64::from(self.interval) * 3 / 2);
        config
    }
}

/// Binds a listening socket; an IPv6 one is IPv6-only so that `0.0.0.0:P` and `[::]:P` can
/// both be served.
pub fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// Receive buffer asked for each UDP socket (the kernel may grant less): room for bursts of
/// about 20,000 announces while the loop catches up.
const UDP_RECV_BUFFER: usize = 4 << 20;

/// Binds `count` (at least 1) UDP sockets to `addr` sharing its port with `SO_REUSEPORT`, so
/// the kernel spreads senders over them; port 0 means the port the first one got. An IPv6
/// address is IPv6-only, as for [`bind`]. Must run inside a tokio runtime.
pub fn bind_udp(addr: SocketAddr, count: usize) -> std::io::Result<Vec<tokio::net::UdpSocket>> {
    let mut addr = addr;
    let mut sockets = Vec::with_capacity(count.max(1));
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_port(true)?;
        // Best effort: a smaller buffer only means drops sooner under a burst.
        let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let std: std::net::UdpSocket = socket.into();
        addr = std.local_addr()?;
        sockets.push(tokio::net::UdpSocket::from_std(std)?);
    }
    Ok(sockets)
}

/// UDP sockets per address when `--udp-sockets` is not given: one per core.
pub fn default_udp_sockets() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_flags_means_the_default_service_on_6969() {
        let a = Args::try_parse_from(["swarm-tracker"]).unwrap();
        assert_eq!(
            a.listen,
            vec!["0.0.0.0:6969".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(a.config(), Config::default());
        assert!(!a.no_udp && !a.no_http, "HTTP and UDP on the same port");
    }

    #[test]
    fn udp_and_http_can_be_turned_off_but_not_both() {
        let a = Args::try_parse_from(["swarm-tracker", "--no-udp", "--udp-sockets", "3"]).unwrap();
        assert!(a.no_udp && !a.no_http);
        assert_eq!(a.udp_sockets, Some(3));
        assert!(
            Args::try_parse_from(["swarm-tracker", "--no-http"])
                .unwrap()
                .no_http
        );
        assert!(Args::try_parse_from(["swarm-tracker", "--no-udp", "--no-http"]).is_err());
    }

    #[tokio::test]
    async fn udp_sockets_share_one_port() {
        let sockets = bind_udp("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let ports: Vec<u16> = sockets
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(
            ports[0] != 0 && ports.iter().all(|&p| p == ports[0]),
            "{ports:?}"
        );
    }

    #[test]
    fn flags_reach_the_config() {
        let a = Args::try_parse_from([
            "swarm-tracker",
            "--listen",
            "127.0.0.1:1",
            "--listen",
            "[::1]:1",
            "--interval",
            "600",
            "--numwant-max",
            "80",
            "--max-swarms",
            "5",
            "--trusted-proxy",
            "10.0.0.1",
            "--announce-rate",
            "120",
        ])
        .unwrap();
        let c = a.config();
        assert_eq!(a.listen.len(), 2);
        assert_eq!(
            (c.interval, c.numwant_max, c.limits.max_swarms),
            (600, 80, 5)
        );
        assert_eq!(c.limits.peer_expiry_secs, 900);
        assert_eq!(
            c.rate_limit.map(|r| (r.per_minute, r.burst)),
            Some((120, 30))
        );
        assert_eq!(
            c.trusted_proxies,
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
    }
}
