//! Envelope tests: signatures, refusals of malformed input, key texts.

use super::*;

fn envelope() -> Envelope {
    Envelope::example()
}

#[test]
fn a_signed_envelope_verifies_under_its_key_only() {
    let key = SigningKey::generate();
    let signed = key.sign(&envelope());
    assert_eq!(
        signed.verify(&key.verifying_key()),
        Ok(signed.peek().unwrap())
    );
    let other = SigningKey::generate();
    assert_eq!(
        signed.verify(&other.verifying_key()),
        Err(EnvelopeError::BadSignature)
    );
}

#[test]
fn any_change_to_the_signed_bytes_breaks_the_signature() {
    let key = SigningKey::generate();
    let signed = key.sign(&envelope());
    let text = String::from_utf8(signed.bytes.clone()).unwrap();
    let forged = SignedEnvelope {
        bytes: text.replace("fraud", "frauD").into_bytes(),
        signature: signed.signature.clone(),
    };
    assert_eq!(
        forged.verify(&key.verifying_key()),
        Err(EnvelopeError::BadSignature)
    );
    let mut signature = signed.signature.clone();
    signature[0] ^= 1;
    let forged = SignedEnvelope {
        bytes: signed.bytes.clone(),
        signature,
    };
    assert_eq!(
        forged.verify(&key.verifying_key()),
        Err(EnvelopeError::BadSignature)
    );
}

#[test]
fn malformed_envelopes_are_refused_with_a_reason() {
    let key = SigningKey::generate();
    let mut bad = envelope();
    bad.nonce = "xyz".to_owned();
    assert!(matches!(
        key.sign(&bad).verify(&key.verifying_key()),
        Err(EnvelopeError::Malformed(reason)) if reason.contains("nonce")
    ));
    let empty = SignedEnvelope {
        bytes: Vec::new(),
        signature: Vec::new(),
    };
    assert!(matches!(empty.peek(), Err(EnvelopeError::Malformed(_))));
    let junk = SignedEnvelope {
        bytes: b"{not json".to_vec(),
        signature: vec![0; 64],
    };
    assert!(matches!(junk.peek(), Err(EnvelopeError::Malformed(_))));
}

#[test]
fn keys_round_trip_through_their_text() {
    let key = SigningKey::generate();
    let again = SigningKey::from_text(&key.to_text()).unwrap();
    assert_eq!(again.verifying_key(), key.verifying_key());
    let public = VerifyingKey::from_text(&key.verifying_key().to_text()).unwrap();
    assert_eq!(public, key.verifying_key());
    assert!(VerifyingKey::from_text("00").is_err());
}

#[test]
fn oversized_envelopes_are_refused_before_parsing() {
    // Past the byte limit nothing is parsed, not even a well-formed object;
    // under it, each text field is still held to its own limit.
    let mut big = envelope();
    big.case_ref = "x".repeat(MAX_ENVELOPE_BYTES);
    let signed = SigningKey::generate().sign(&big);
    assert_eq!(
        signed.peek(),
        Err(EnvelopeError::Malformed("envelope too large".to_owned()))
    );
    let mut long = envelope();
    long.purpose = "x".repeat(MAX_FIELD_CHARS + 1);
    assert!(matches!(
        SigningKey::generate().sign(&long).peek(),
        Err(EnvelopeError::Malformed(reason)) if reason.contains("purpose")
    ));
}

#[test]
fn key_texts_of_any_length_are_refused_cleanly() {
    let long = "ab".repeat(100_000);
    for text in [
        "",
        "0",
        "é",
        "0".repeat(63).as_str(),
        "0".repeat(65).as_str(),
        long.as_str(),
        "zz".repeat(32).as_str(),
    ] {
        assert!(matches!(
            VerifyingKey::from_text(text),
            Err(EnvelopeError::BadKey(_))
        ));
        assert!(matches!(
            SigningKey::from_text(text),
            Err(EnvelopeError::BadKey(_))
        ));
    }
}

#[test]
fn payload_hashes_separate_fields() {
    let mut a = PayloadHasher::new("stats");
    a.text("ab").text("c");
    let mut b = PayloadHasher::new("stats");
    b.text("a").text("bc");
    assert_ne!(a.finish(), b.finish());
}
