//! The LSD sockets: UDP port 6771 on all addresses with SO_REUSEADDR (every BitTorrent client
//! on a host listens there), joined to the group on each interface we announce on; our
//! datagrams go out once per interface, looped back to this host too (another process here
//! may be a peer; the cookie drops our own).
//!
//! Which interfaces: those up, multicast-capable and not loopback that carry an address we
//! accept peers on (all of them when we listen on every address). IPv4 joins and sends by
//! the interface's address; IPv6 by its index, on interfaces with an IPv6 address.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use nix::ifaddrs::getifaddrs;
use nix::net::if_::{InterfaceFlags, if_nametoindex};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;

/// The LSD port.
pub const PORT: u16 = 6771;
/// The IPv4 group.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
/// The IPv6 group (site-local scope).
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f);
/// Our datagrams stay on the link: "local" discovery (libtorrent sends with 32).
const HOPS: u32 = 1;

/// An interface to announce on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Iface {
    /// An IPv4 interface, by its address.
    V4(Ipv4Addr),
    /// An IPv6 interface, by its index.
    V6(u32),
}

/// One address family's socket and the interfaces it joined.
#[derive(Debug)]
pub struct Group {
    /// Bound to the LSD port on the family's unspecified address.
    pub socket: UdpSocket,
    /// The group's address and port.
    dest: SocketAddr,
    /// Interfaces joined (and sent on).
    ifaces: Vec<Iface>,
}

impl Group {
    /// Opens the family's socket and joins on `ifaces` (those of the family). `Ok(None)`
    /// when there is none of the family.
    fn open(v6: bool, ifaces: &[Iface]) -> io::Result<Option<Group>> {
        let mine: Vec<Iface> = ifaces
            .iter()
            .copied()
            .filter(|i| matches!(i, Iface::V6(_)) == v6)
            .collect();
        if mine.is_empty() {
            return Ok(None);
        }
        let (domain, bind, dest) = if v6 {
            (
                Domain::IPV6,
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, PORT)),
                SocketAddr::V6(SocketAddrV6::new(GROUP_V6, PORT, 0, 0)),
            )
        } else {
            (
                Domain::IPV4,
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)),
                SocketAddr::V4(SocketAddrV4::new(GROUP_V4, PORT)),
            )
        };
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        if v6 {
            s.set_only_v6(true)?;
            s.set_multicast_loop_v6(true)?;
            s.set_multicast_hops_v6(HOPS)?;
        } else {
            s.set_multicast_loop_v4(true)?;
            s.set_multicast_ttl_v4(HOPS)?;
        }
        s.bind(&bind.into())?;
        s.set_nonblocking(true)?;
        let mut g = Group {
            socket: UdpSocket::from_std(s.into())?,
            dest,
            ifaces: Vec::new(),
        };
        let mut last = None;
        for i in mine {
            if let Err(e) = g.join(i) {
                last = Some(e);
            }
        }
        match (g.ifaces.is_empty(), last) {
            (true, Some(e)) => Err(e),
            _ => Ok(Some(g)),
        }
    }

    /// Joins the group on `iface` (once).
    fn join(&mut self, iface: Iface) -> io::Result<()> {
        if self.ifaces.contains(&iface) {
            return Ok(());
        }
        let s = SockRef::from(&self.socket);
        match iface {
            Iface::V4(a) => s.join_multicast_v4(&GROUP_V4, &a)?,
            Iface::V6(i) => s.join_multicast_v6(&GROUP_V6, i)?,
        }
        tracing::debug!(?iface, "LSD: joined the group");
        self.ifaces.push(iface);
        Ok(())
    }

    /// Sends `datagram` to the group on every interface joined; how many sends went out.
    async fn send(&self, datagram: &[u8]) -> usize {
        let mut sent = 0;
        for iface in &self.ifaces {
            let s = SockRef::from(&self.socket);
            let chosen = match iface {
                Iface::V4(a) => s.set_multicast_if_v4(a),
                Iface::V6(i) => s.set_multicast_if_v6(*i),
            };
            let r = match chosen {
                Ok(()) => self.socket.send_to(datagram, self.dest).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match r {
                Ok(()) => sent += 1,
                Err(e) => tracing::debug!(?iface, error = %e, "LSD: send failed"),
            }
        }
        sent
    }
}

/// The IPv4 and IPv6 sockets (either may be missing) and what we listen on.
#[derive(Debug)]
pub struct Sockets {
    /// IPv4.
    pub v4: Option<Group>,
    /// IPv6.
    pub v6: Option<Group>,
    listen: Vec<SocketAddr>,
}

impl Sockets {
    /// Opens the sockets for the interfaces that carry `listen` (our listening addresses).
    /// `Ok(None)`: no interface to announce on.
    pub fn open(listen: &[SocketAddr]) -> io::Result<Option<Sockets>> {
        let ifaces = interfaces(listen)?;
        if ifaces.is_empty() {
            return Ok(None);
        }
        let v4 = Group::open(false, &ifaces);
        let v6 = Group::open(true, &ifaces);
        let (v4, v6) = match (v4, v6) {
            (Err(e), Err(_) | Ok(None)) | (Ok(None), Err(e)) => return Err(e),
            (Err(e), Ok(v6)) => {
                tracing::debug!(error = %e, "LSD: no IPv4 socket");
                (None, v6)
            }
            (Ok(v4), Err(e)) => {
                tracing::debug!(error = %e, "LSD: no IPv6 socket");
                (v4, None)
            }
            (Ok(v4), Ok(v6)) => (v4, v6),
        };
        if v4.is_none() && v6.is_none() {
            return Ok(None);
        }
        Ok(Some(Sockets {
            v4,
            v6,
            listen: listen.to_vec(),
        }))
    }

    /// Joins interfaces that appeared since the last look (a cable plugged in, a VPN up).
    pub fn refresh(&mut self) {
        let Ok(ifaces) = interfaces(&self.listen) else {
            return;
        };
        for i in ifaces {
            let g = match i {
                Iface::V4(_) => self.v4.as_mut(),
                Iface::V6(_) => self.v6.as_mut(),
            };
            if let Some(g) = g
                && let Err(e) = g.join(i)
            {
                tracing::debug!(iface = ?i, error = %e, "LSD: cannot join");
            }
        }
    }

    /// Sends `v4` on the IPv4 interfaces and `v6` on the IPv6 ones; how many went out.
    pub async fn send(&self, v4: &[u8], v6: &[u8]) -> usize {
        let mut sent = 0;
        if let Some(g) = &self.v4 {
            sent += g.send(v4).await;
        }
        if let Some(g) = &self.v6 {
            sent += g.send(v6).await;
        }
        sent
    }
}

/// The interfaces to announce on, given the addresses we listen on (empty: the default
/// listener, on every address of both families).
fn interfaces(listen: &[SocketAddr]) -> io::Result<Vec<Iface>> {
    // A listener on [::] is dual-stack: it takes IPv4 peers too.
    let all_v4 = listen.is_empty() || listen.iter().any(|a| a.ip().is_unspecified());
    let all_v6 = listen.is_empty() || listen.iter().any(|a| a.ip() == Ipv6Addr::UNSPECIFIED);
    let listens_on = |ip: IpAddr| listen.iter().any(|a| a.ip().to_canonical() == ip);
    let mut out = Vec::new();
    let mut v6_names: Vec<String> = Vec::new();
    for ifa in getifaddrs().map_err(io::Error::from)? {
        let f = ifa.flags;
        if !f.contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_MULTICAST)
            || f.contains(InterfaceFlags::IFF_LOOPBACK)
        {
            continue;
        }
        let Some(addr) = ifa.address else { continue };
        if let Some(sin) = addr.as_sockaddr_in() {
            let ip = sin.ip();
            if (all_v4 || listens_on(IpAddr::V4(ip))) && !out.contains(&Iface::V4(ip)) {
                out.push(Iface::V4(ip));
            }
        } else if let Some(sin6) = addr.as_sockaddr_in6() {
            let ip = sin6.ip();
            if (all_v6 || listens_on(IpAddr::V6(ip))) && !v6_names.contains(&ifa.interface_name) {
                v6_names.push(ifa.interface_name.clone());
            }
        }
    }
    for name in v6_names {
        if let Ok(i) = if_nametoindex(name.as_str()) {
            out.push(Iface::V6(i));
        }
    }
    Ok(out)
}
