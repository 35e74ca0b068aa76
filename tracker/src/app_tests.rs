//! Request logic: addresses, numwant, failures and caps, without HTTP.

use std::net::{Ipv4Addr, SocketAddr};

use metainfo::{InfoHash, PeerId};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tracker_proto::{AnnounceRequest, AnnounceResponse, Event, ParamBytes, ResponseError};

use super::*;

fn req(port: u16, left: u64) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([7; 20]),
        peer_id: PeerId([1; 20]),
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event: Event::Started,
        compact: true,
        no_peer_id: false,
        numwant: None,
        key: None,
        trackerid: None,
        ip: None,
    }
}

fn src(last: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 0, last), 40000))
}

fn call(
    app: &App,
    r: &AnnounceRequest,
    origin: Origin<'_>,
) -> Result<AnnounceResponse, ResponseError> {
    let mut out = Vec::new();
    let mut rng = SmallRng::seed_from_u64(1);
    app.announce(r.to_query().as_bytes(), &origin, 0, &mut rng, &mut out);
    AnnounceResponse::decode(&out)
}

fn plain(last: u8) -> Origin<'static> {
    Origin {
        source: src(last),
        forwarded_for: None,
    }
}

#[test]
fn peer_address_is_the_source_ip_with_the_announced_port() {
    let app = App::new(Config::default());
    let mut spoof = req(6881, 5);
    spoof.ip = ParamBytes::new(b"1.2.3.4");
    call(&app, &spoof, plain(1)).unwrap();
    let got = call(&app, &req(7000, 5), plain(2)).unwrap();
    assert_eq!(
        got.peers,
        vec![SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 6881))]
    );
    assert_eq!((got.complete, got.incomplete), (Some(0), Some(2)));
    assert_eq!((got.interval, got.min_interval), (Some(1800), Some(900)));
}

#[test]
fn ip_param_and_forwarded_for_only_when_configured() {
    let config = Config {
        accept_ip_param: true,
        trusted_proxies: vec![Ipv4Addr::new(10, 0, 0, 9).into()],
        ..Config::default()
    };
    let app = App::new(config);
    let mut claimed = req(1, 5);
    claimed.ip = ParamBytes::new(b"192.0.2.1");
    call(&app, &claimed, plain(1)).unwrap();
    let proxied = Origin {
        source: src(9),
        forwarded_for: Some(b"203.0.113.5, 198.51.100.7"),
    };
    call(&app, &req(2, 5), proxied).unwrap();
    let untrusted = Origin {
        source: src(3),
        forwarded_for: Some(b"203.0.113.99"),
    };
    let got = call(&app, &req(3, 5), untrusted).unwrap();
    let mut peers = got.peers;
    peers.sort();
    assert_eq!(
        peers,
        vec![
            SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 1)),
            SocketAddr::from((Ipv4Addr::new(198, 51, 100, 7), 2)),
        ]
    );
}

#[test]
fn numwant_defaults_and_is_capped() {
    let app = App::new(Config::default());
    for i in 0..250u16 {
        call(&app, &req(1000 + i, 5), plain(1)).unwrap();
    }
    let r = req(9, 5);
    assert_eq!(call(&app, &r, plain(2)).unwrap().peers.len(), 50);
    let mut r = req(9, 5);
    r.numwant = Some(1000);
    assert_eq!(call(&app, &r, plain(2)).unwrap().peers.len(), 200);
}

#[test]
fn bad_requests_get_a_failure_reason() {
    let app = App::new(Config::default());
    let mut out = Vec::new();
    let mut rng = SmallRng::seed_from_u64(1);
    app.announce(b"info_hash=abc&port=1", &plain(1), 0, &mut rng, &mut out);
    assert_eq!(
        AnnounceResponse::decode(&out),
        Err(ResponseError::Failure(
            "info_hash must be 20 bytes, got 3".into()
        ))
    );
    out.clear();
    let long = vec![b'a'; app.config.max_query_len + 1];
    app.announce(&long, &plain(1), 0, &mut rng, &mut out);
    assert_eq!(
        AnnounceResponse::decode(&out),
        Err(ResponseError::Failure("request too long".into()))
    );
    out.clear();
    app.scrape(b"", &mut out);
    assert_eq!(out, b"d14:failure reason17:missing info_hashe");
    assert_eq!(
        app.metrics
            .failures
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[test]
fn rate_limit_refuses_fast_announcers_only() {
    let config = Config {
        rate_limit: Some(crate::rate_limit::RateLimit {
            per_minute: 60,
            burst: 1,
            max_tracked: 100,
        }),
        ..Config::default()
    };
    let app = App::new(config);
    assert!(call(&app, &req(1, 5), plain(1)).is_ok());
    assert!(call(&app, &req(1, 5), plain(1)).is_ok());
    assert_eq!(
        call(&app, &req(1, 5), plain(1)),
        Err(ResponseError::Failure(
            "rate limit exceeded: announce less often".into()
        ))
    );
    assert!(
        call(&app, &req(1, 5), plain(2)).is_ok(),
        "other addresses are unaffected"
    );
}

#[test]
fn full_tracker_refuses_new_swarms_and_warns_unlisted_peers() {
    let mut config = Config::default();
    config.limits.max_swarms = 1;
    config.limits.max_peers_per_swarm = 1;
    let app = App::new(config);
    call(&app, &req(1, 5), plain(1)).unwrap();
    let got = call(&app, &req(2, 5), plain(2)).unwrap();
    assert_eq!(got.warning.as_deref(), Some(NOT_LISTED));
    assert_eq!(got.peers.len(), 1);
    let mut other = req(1, 5);
    other.info_hash = InfoHash([0x17; 20]);
    assert_eq!(
        call(&app, &other, plain(1)),
        Err(ResponseError::Failure(
            "tracker is full: too many torrents".into()
        ))
    );
}
