//! Network namespaces made by a test: two joined by a veth pair ([`VethPair`], so a test can cut
//! the link between two processes and restore it), or a small LAN of hosts on one bridge
//! ([`Lan`], for multicast between processes). Traffic stays inside them (addresses in
//! 10.199.0.0/16 exist only there); everything is removed when the guard is dropped.
//!
//! Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and the `ip` program; where either is missing,
//! [`VethPair::create`] and [`Lan::create`] say why so the test can print a SKIP line.
//! Namespaces left behind by a crashed run (their names carry the pid of a process that is
//! gone) are removed first.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Namespace and interface names start with this, then the pid of the test process.
const PREFIX: &str = "swt";
/// The first namespace's address on the pair.
pub const A_ADDR: Ipv4Addr = Ipv4Addr::new(10, 199, 0, 1);
/// The second namespace's address on the pair.
pub const B_ADDR: Ipv4Addr = Ipv4Addr::new(10, 199, 0, 2);

/// Why the namespaces could not be made: the test should skip (and say so).
#[derive(Debug)]
pub struct NotPermitted(pub String);

/// Namespaces `a` and `b`, with interfaces `a_if` (in `a`, [`A_ADDR`]) and `b_if` (in `b`,
/// [`B_ADDR`]) joined as a veth pair.
#[derive(Debug)]
pub struct VethPair {
    a: String,
    b: String,
    a_if: String,
}

impl VethPair {
    /// Creates both namespaces and the pair, up and addressed. `tag` (one letter or digit)
    /// keeps several pairs of one process apart.
    pub fn create(tag: char) -> Result<Result<VethPair, NotPermitted>> {
        remove_leftovers();
        let pid = std::process::id();
        let a = format!("{PREFIX}{pid}{tag}a");
        let b = format!("{PREFIX}{pid}{tag}b");
        // Interface names are at most 15 bytes; these are at most 3 + 10 + 1 + 1.
        let a_if = a.clone();
        let b_if = b.clone();
        if let Err(e) = ip(&["netns", "add", &a]) {
            return Ok(Err(NotPermitted(format!("ip netns add: {e:#}"))));
        }
        let pair = VethPair {
            a: a.clone(),
            b: b.clone(),
            a_if: a_if.clone(),
        };
        ip(&["netns", "add", &b])?;
        ip(&[
            "link", "add", &a_if, "netns", &a, "type", "veth", "peer", "name", &b_if, "netns", &b,
        ])?;
        for (ns, dev, addr) in [(&a, &a_if, A_ADDR), (&b, &b_if, B_ADDR)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(Ok(pair))
    }

    /// `program` to be run inside namespace `a` (through `ip netns exec`).
    pub fn in_a(&self, program: &std::path::Path) -> Command {
        in_ns(&self.a, program)
    }

    /// `program` to be run inside namespace `b`.
    pub fn in_b(&self, program: &std::path::Path) -> Command {
        in_ns(&self.b, program)
    }

    /// Takes the link down (`up = false`) or brings it back up.
    pub fn set_link(&self, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.a, "link", "set", &self.a_if, state])
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end inside it, and with it the pair.
        for ns in [&self.a, &self.b] {
            if let Err(e) = ip(&["netns", "delete", ns]) {
                eprintln!("cleanup: {e:#}");
            }
        }
    }
}

/// Hosts on a LAN: each host is a namespace with one interface ([`LAN_IF`]) whose other end is
/// a port of a bridge in a namespace of its own (the hub), so nothing is added to the test
/// machine's own network. Each host has [`Lan::addr`] (10.199.1.x/24) and, where the machine
/// has IPv6, [`Lan::addr6`] (fd99:199::x/64), routes 224.0.0.0/4 to its interface, and the bridge floods multicast
/// (no IGMP snooping: there is no querier).
#[derive(Debug)]
pub struct Lan {
    hub: String,
    hosts: Vec<String>,
    ipv6: bool,
}

/// The name of each host's interface on a [`Lan`].
pub const LAN_IF: &str = "lan0";

impl Lan {
    /// Creates the hub with its bridge and `hosts` hosts (at most 9), up and addressed. `tag`
    /// (one letter or digit) keeps several LANs of one process apart.
    pub fn create(tag: char, hosts: usize) -> Result<Result<Lan, NotPermitted>> {
        remove_leftovers();
        let pid = std::process::id();
        let hub = format!("{PREFIX}{pid}{tag}h");
        if let Err(e) = ip(&["netns", "add", &hub]) {
            return Ok(Err(NotPermitted(format!("ip netns add: {e:#}"))));
        }
        let mut lan = Lan {
            hub: hub.clone(),
            hosts: Vec::new(),
            ipv6: true,
        };
        ip(&[
            "-n",
            &hub,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..hosts.min(9) {
            let ns = format!("{PREFIX}{pid}{tag}{i}");
            ip(&["netns", "add", &ns])?;
            lan.hosts.push(ns.clone());
            let port = format!("p{i}");
            ip(&[
                "link", "add", LAN_IF, "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &hub,
            ])?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &hub, "link", "set", &port, "up"])?;
            let v4 = format!("{}/24", Lan::addr(i));
            ip(&["-n", &ns, "addr", "add", &v4, "dev", LAN_IF])?;
            // No duplicate address detection: the address is usable at once. A machine with
            // IPv6 turned off has a LAN without it.
            let v6 = format!("{}/64", Lan::addr6(i));
            lan.ipv6 &= ip(&["-n", &ns, "-6", "addr", "add", &v6, "dev", LAN_IF, "nodad"]).is_ok();
            ip(&["-n", &ns, "link", "set", LAN_IF, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", LAN_IF])?;
        }
        Ok(Ok(lan))
    }

    /// Host `i`'s IPv4 address: 10.199.1.(i + 1).
    pub fn addr(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 199, 1, 1 + i as u8)
    }

    /// Host `i`'s IPv6 address: fd99:199::(i + 1).
    pub fn addr6(i: usize) -> Ipv6Addr {
        Ipv6Addr::new(0xfd99, 0x199, 0, 0, 0, 0, 0, 1 + i as u16)
    }

    /// Do the hosts have their IPv6 addresses?
    pub fn has_ipv6(&self) -> bool {
        self.ipv6
    }

    /// Host `i`'s namespace.
    pub fn netns(&self, i: usize) -> &str {
        self.hosts.get(i).map_or("", String::as_str)
    }

    /// `program` to be run inside host `i` (through `ip netns exec`).
    pub fn on(&self, i: usize, program: &std::path::Path) -> Command {
        in_ns(self.netns(i), program)
    }

    /// Runs `make` on a thread that entered host `i`'s network namespace, so that the sockets
    /// it opens live there (and stay there once the thread is gone).
    pub fn within<T: Send>(
        &self,
        i: usize,
        make: impl FnOnce() -> std::io::Result<T> + Send,
    ) -> Result<T> {
        let path = format!("/run/netns/{}", self.netns(i));
        std::thread::scope(|s| {
            s.spawn(|| -> Result<T> {
                let ns = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("setns {path}"))?;
                Ok(make()?)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the thread in {path} panicked"))?
        })
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end inside it, and with it its pair.
        for ns in self.hosts.iter().chain(std::iter::once(&self.hub)) {
            if let Err(e) = ip(&["netns", "delete", ns]) {
                eprintln!("cleanup: {e:#}");
            }
        }
    }
}

/// `program` run inside namespace `ns` (through `ip netns exec`).
pub fn in_ns(ns: &str, program: &std::path::Path) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("run ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Deletes namespaces named `swt<pid>..` whose process is gone (a crashed earlier run).
fn remove_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let alive = digits.is_empty() || std::path::Path::new(&format!("/proc/{digits}")).exists();
        if !alive {
            let _ = ip(&["netns", "delete", name]);
        }
    }
}
