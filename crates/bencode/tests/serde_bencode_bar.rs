//! Why `serde_bencode` (0.2.4) does not read network or file input here, and our scanner does.
//!
//! The design names serde + serde_bencode as the crate of the field for bencode. The bar for a
//! parser of hostile input is: it returns an error for any input, within bounded time, memory
//! and stack. serde_bencode does not meet it: its decoder recurses once per nesting level with
//! no limit, so a few megabytes of `l` overflow the stack, and a stack overflow aborts the whole
//! process (it cannot be caught like a panic). It is also lax where BEP 3 is strict. These tests
//! pin both facts; if a new serde_bencode stops overflowing, `deep_nesting_aborts_serde_bencode`
//! fails and says the decision must be revisited (ARCHITECTURE.md, Invariants).

use bencode::{ErrorKind, HARD_MAX_DEPTH, Limits, decode, raw_dict, value_len, value_len_with};
use serde_bencode::value::Value as SerdeValue;
use std::process::Command;

/// Nesting depth of the hostile input: 2 MiB of `l`. Each level is at least one call (an 8-byte
/// return address), so 2 Mi levels cannot fit in 8 MiB whatever the optimisation level; in fact
/// each level is several frames (`deserialize_any` -> `visit_seq` -> `next_element_seed` ->
/// ...), so the overflow comes early in the input, within milliseconds.
const DEPTH: usize = 2 << 20;

/// Stack of the thread that runs serde_bencode in the child: the default stack of a program's
/// main thread on Linux (`ulimit -s`), set explicitly so the outcome does not depend on how
/// libtest runs tests or on `RUST_MIN_STACK`.
const STACK: usize = 8 << 20;

/// Tells the helper test below to run the deep decode (it does nothing otherwise).
const CHILD_ENV: &str = "SWARM_SERDE_BENCODE_DEEP_CHILD";
/// The helper's exact test name, as libtest lists it.
const CHILD_TEST: &str = "serde_bencode_deep_decode_child";
/// Printed by the helper just before it decodes, so the parent knows it really ran.
const CHILD_MARKER: &str = "serde_bencode child: decoding";

fn deep_lists() -> Vec<u8> {
    vec![b'l'; DEPTH]
}

/// Run in a child process only (see `deep_nesting_aborts_serde_bencode`): decodes [`DEPTH`]
/// nested lists with serde_bencode on a thread with an 8 MiB stack.
#[test]
#[ignore = "helper: run by deep_nesting_aborts_serde_bencode in a child process"]
fn serde_bencode_deep_decode_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let input = deep_lists();
    eprintln!("{CHILD_MARKER} {DEPTH} nested lists on a {STACK}-byte stack");
    let outcome = std::thread::Builder::new()
        .name("serde_bencode-deep".into())
        .stack_size(STACK)
        .spawn(move || serde_bencode::from_bytes::<SerdeValue>(&input).is_err())
        .expect("spawn the decoding thread")
        .join();
    // Reached only if serde_bencode returned (or panicked) instead of overflowing the stack.
    eprintln!("serde_bencode child: decode returned, is_err = {outcome:?}");
}

#[test]
#[cfg(unix)]
fn deep_nesting_aborts_serde_bencode() {
    use std::os::unix::process::ExitStatusExt;

    // Our scanner and decoder refuse the same input at the depth limit, without recursion.
    let input = deep_lists();
    let e = value_len(&input).unwrap_err();
    assert_eq!(
        (e.pos, e.kind),
        (64, ErrorKind::TooDeep { max: 64 }),
        "value_len"
    );
    let unlimited = Limits {
        max_depth: usize::MAX,
        ..Limits::default()
    };
    assert_eq!(
        value_len_with(&input, &unlimited).unwrap_err().kind,
        ErrorKind::TooDeep {
            max: HARD_MAX_DEPTH
        }
    );
    assert_eq!(
        decode(&input).unwrap_err().kind,
        ErrorKind::TooDeep { max: 64 },
        "decode"
    );

    // serde_bencode, in a child process: the overflow would abort this test binary otherwise.
    let exe = std::env::current_exe().expect("path of this test binary");
    let out = Command::new(exe)
        .args([CHILD_TEST, "--ignored", "--exact", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child test binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(CHILD_MARKER),
        "the helper test did not run (name changed?): {}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        out.status.success() || out.status.code().is_none(),
        "the child failed without dying (a caught panic?): {}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        out.status.signal().is_some(),
        "serde_bencode decoded {DEPTH} nested lists on an 8 MiB stack without overflowing \
         ({}): the reason it is kept off network and file input is gone; revisit the decision \
         in ARCHITECTURE.md (Invariants).\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("has overflowed its stack"),
        "the child died of {} but not of a stack overflow:\n{stderr}",
        out.status
    );
}

/// What serde_bencode does with input our scanner refuses: it decodes it.
#[test]
fn serde_bencode_accepts_what_bep3_forbids() {
    let serde = |buf: &[u8]| serde_bencode::from_bytes::<SerdeValue>(buf);
    let cases: [(&[u8], SerdeValue, ErrorKind); 4] = [
        (b"i03e", SerdeValue::Int(3), ErrorKind::LeadingZero),
        (b"i-0e", SerdeValue::Int(0), ErrorKind::NegativeZero),
        (b"i+5e", SerdeValue::Int(5), ErrorKind::UnexpectedByte(b'+')),
        (
            b"03:abc",
            SerdeValue::Bytes(b"abc".to_vec()),
            ErrorKind::LeadingZero,
        ),
    ];
    for (input, lax, strict) in cases {
        let shown = String::from_utf8_lossy(input);
        assert_eq!(serde(input).ok(), Some(lax), "serde_bencode on {shown}");
        assert_eq!(
            value_len(input).unwrap_err().kind,
            strict,
            "ours on {shown}"
        );
    }

    // Bytes after the value are ignored; `decode` (one whole value) refuses them.
    assert_eq!(serde(b"i1ejunk").ok(), Some(SerdeValue::Int(1)));
    assert_eq!(
        decode(b"i1ejunk").unwrap_err().kind,
        ErrorKind::TrailingBytes
    );
}

/// Dictionary keys: unsorted keys are accepted by both (torrents in the wild have them); a
/// duplicate key is silently folded by serde_bencode (the last value wins, the first is lost),
/// while our scanner keeps every entry in input order so a caller can see and refuse it.
#[test]
fn dictionary_keys_unsorted_and_duplicate() {
    let serde = |buf: &[u8]| serde_bencode::from_bytes::<SerdeValue>(buf);

    let unsorted = b"d1:bi1e1:ai2ee";
    assert!(serde(unsorted).is_ok());
    assert_eq!(value_len(unsorted), Ok(unsorted.len()));

    let duplicate = b"d1:ai1e1:ai2ee";
    match serde(duplicate) {
        Ok(SerdeValue::Dict(map)) => {
            assert_eq!(map.len(), 1);
            assert_eq!(map.get(&b"a"[..]), Some(&SerdeValue::Int(2)));
        }
        other => panic!("serde_bencode on a duplicate key: {other:?}"),
    }
    let entries = raw_dict(duplicate, &Limits::default()).expect("our scanner reads it");
    let seen: Vec<(&[u8], &[u8])> = entries.iter().map(|e| (e.key, e.raw)).collect();
    assert_eq!(seen, [(&b"a"[..], &b"i1e"[..]), (b"a", b"i2e")]);
}
