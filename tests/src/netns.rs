//! Two network namespaces joined by a veth pair, made by a test so it can cut the link between
//! two processes and restore it. Traffic stays on the pair (addresses in 10.199.0.0/24 exist only
//! inside the two namespaces); the namespaces and the pair are removed when the guard is dropped.
//!
//! Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and the `ip` program; where either is missing,
//! [`VethPair::create`] says why so the test can print a SKIP line. Namespaces left behind by a
//! crashed run (their names carry the pid of a process that is gone) are removed first.

use std::net::Ipv4Addr;
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

fn in_ns(ns: &str, program: &std::path::Path) -> Command {
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
