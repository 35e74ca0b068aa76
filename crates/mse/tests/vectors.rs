//! Known answers: RC4 (RFC 6229), the DH keys and the key derivation (computed once with
//! Python's `pow` and `hashlib`, pasted as hex).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use mse::{Cipher, PrivateKey, RC4_DISCARD, Rc4, rc4_key, req1, req2, req3};
use rand::{Rng, SeedableRng};
use rc4::{KeyInit, StreamCipher, consts::U16, consts::U20};

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

#[test]
fn rc4_matches_rfc6229() {
    // RFC 6229, 128-bit key 0x0102..10: offsets 0, 16, 1008 and 1024.
    let mut rc4 = Rc4::new(&unhex::<16>("0102030405060708090a0b0c0d0e0f10"));
    let mut ks = vec![0u8; 0x410];
    rc4.apply(&mut ks);
    assert_eq!(hex::encode(&ks[..16]), "9ac7cc9a609d1ef7b2932899cde41b97");
    assert_eq!(
        hex::encode(&ks[0x10..0x20]),
        "5248c4959014126a6e8a84f11d1a9e1c"
    );
    assert_eq!(
        hex::encode(&ks[0x3f0..0x400]),
        "e7a72574f8782ae26aabcf9ebcd66065"
    );
    assert_eq!(
        hex::encode(&ks[0x400..0x410]),
        "bdf0324e6083dcc6d3cedd3ca8c53c16"
    );
    assert_eq!(RC4_DISCARD, 0x400);
}

#[test]
fn rc4_matches_rfc6229_40_bit_key_split_oddly() {
    // RFC 6229, 40-bit key 0x0102030405, offsets 0 and 1536, fed in chunks of 1, 7 and 13
    // bytes so that the word path and the byte tail both run.
    let mut rc4 = Rc4::new(&[1, 2, 3, 4, 5]);
    let mut ks = vec![0u8; 1552];
    let mut at = 0;
    for n in [1usize, 7, 13].iter().cycle() {
        let end = (at + n).min(ks.len());
        rc4.apply(&mut ks[at..end]);
        at = end;
        if at == ks.len() {
            break;
        }
    }
    assert_eq!(hex::encode(&ks[..16]), "b2396305f03dc027ccc3524a0a1118a8");
    assert_eq!(
        hex::encode(&ks[1536..1552]),
        "d8729db41882259bee4f825325f5a130"
    );
}

#[test]
fn rc4_agrees_with_rustcrypto_byte_for_byte() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(6229);
    for _ in 0..200 {
        let key16: [u8; 16] = rng.r#gen();
        let key20: [u8; 20] = rng.r#gen();
        let mut theirs16 = rc4::Rc4::<U16>::new(&key16.into());
        let mut theirs20 = rc4::Rc4::<U20>::new(&key20.into());
        let (mut ours16, mut ours20) = (Rc4::new(&key16), Rc4::new(&key20));
        for _ in 0..8 {
            let len = rng.gen_range(0..3000);
            let data: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            let (mut a, mut b) = (data.clone(), data.clone());
            ours16.apply(&mut a);
            theirs16.apply_keystream(&mut b);
            assert_eq!(a, b);
            let (mut a, mut b) = (data.clone(), data);
            ours20.apply(&mut a);
            theirs20.apply_keystream(&mut b);
            assert_eq!(a, b);
        }
    }
}

#[test]
fn cipher_discards_the_first_1024_bytes() {
    // A 160-bit key 0x01..0x14 (RFC 6229 has no 160-bit vector): keystream bytes 1024..1056
    // by a separate RC4 (Python), which gives the RFC's figures for its keys.
    let mut c = Cipher::new(&std::array::from_fn(|i| i as u8 + 1));
    let mut ks = [0u8; 32];
    c.apply(&mut ks);
    assert_eq!(
        hex::encode(ks),
        "d0ef0c6b23f128219c352c15881d52c1218b80bca903b05ddb8666940530bce8"
    );
}

const XA: &str = "0123456789abcdef0123456789abcdef01234567";
const XB: &str = "fedcba9876543210fedcba9876543210fedcba98";
const YA: &str = "6fd4bc7aa649593205ec30348a3ccc737b61fa01e9e1762c2c53eb69033afecbdf7c13b8ac3643af78d0760b0f42db009f2b96c970f009d060faf617f117d0f1c221cea0561b9a86e852fc70a6f09ad0f82378603aa5e56b811deb3f534bf276";
const YB: &str = "e2666b9cffca63998c8e806db50c47ac12512b327c5ec48d62e0a43c2961afcf136e7219fe2ec51e656b2f01ed089dd8cc53c78e7d650df59a752131bcf8ffff122144bf10c6269b47886d6af58389223c66153ebb5e3dc18ea849ceb60ac18e";
const S: &str = "0bf59f468e43b9f22a5fd0ccbc9bd7825a7495f6e670c31533db364b536ee297a737d565ff7829d4c397de16aec19f893e3d28eaa14eaf7e17e1026697089fdff81c7dc7e4c65e6211443d9dd3e5d8b0c0e8b2888af39637af18a75cc1b17685";

#[test]
fn dh_public_keys_and_shared_secret() {
    let a = PrivateKey(unhex(XA));
    let b = PrivateKey(unhex(XB));
    assert_eq!(hex::encode(a.public_key()), YA);
    assert_eq!(hex::encode(b.public_key()), YB);
    assert_eq!(hex::encode(a.shared_secret(&unhex(YB))), S);
    assert_eq!(hex::encode(b.shared_secret(&unhex(YA))), S);
}

#[test]
fn dh_reduces_a_public_key_past_the_prime() {
    // Y + P (still 96 bytes) gives the same secret as Y: 2^x mod P for x = 1 is 2, and
    // P + 2 = ...0565.
    let one = PrivateKey(std::array::from_fn(|i| u8::from(i == 19)));
    let p_plus_2 = unhex::<96>(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090565",
    );
    let mut two = [0u8; 96];
    two[95] = 2;
    assert_eq!(one.public_key(), two);
    assert_eq!(one.shared_secret(&p_plus_2), two);
}

#[test]
fn key_derivation() {
    let s = unhex::<96>(S);
    let skey: [u8; 20] = std::array::from_fn(|i| i as u8);
    assert_eq!(
        hex::encode(req1(&s)),
        "e12fb1218d51e869dc8785d0bfafa6f1d59ee4e0"
    );
    assert_eq!(
        hex::encode(req2(&skey)),
        "4321b2c3fbde0a4fa12ca762484f5b8dc9cf4b5f"
    );
    assert_eq!(
        hex::encode(req3(&s)),
        "e958c54b3416790c08e23c2ab9e1af18267b8fd3"
    );
    assert_eq!(
        hex::encode(rc4_key(true, &s, &skey)),
        "10da2c4f1af971f79495abbcca9d8ce03b531ea5"
    );
    assert_eq!(
        hex::encode(rc4_key(false, &s, &skey)),
        "f1f6a18c5394c2006f9710e71f8d7c4baf28544f"
    );
}
