//! Crypto-currency wallet addresses: bitcoin (base58check, segwit) and ethereum (EIP-55).

use bech32::{hrp, segwit};
use sha3::{Digest, Keccak256};

use super::{IdentifierError, IdentifierKind};

/// Base58check version bytes of mainnet P2PKH and P2SH addresses.
const BTC_VERSIONS: [u8; 2] = [0x00, 0x05];
/// Version byte plus a 20-byte hash; the 4 checksum bytes are stripped by the decoder.
const BTC_PAYLOAD_LEN: usize = 21;
const ETH_HEX_LEN: usize = 40;

fn invalid(reason: &'static str) -> IdentifierError {
    IdentifierError::invalid(IdentifierKind::CryptoWallet, reason)
}

/// Normalises a trimmed, non-empty `<chain>:<address>`.
pub(super) fn normalise(raw: &str) -> Result<String, IdentifierError> {
    let (chain, address) = raw
        .split_once(':')
        .ok_or_else(|| invalid("wallet address has no chain prefix"))?;
    let address = address.trim();
    match chain.trim().to_ascii_lowercase().as_str() {
        "btc" | "bitcoin" => normalise_btc(address).map(|a| format!("btc:{a}")),
        "eth" | "ethereum" => normalise_eth(address).map(|a| format!("eth:0x{a}")),
        _ => Err(invalid("wallet chain is not supported")),
    }
}

/// Returns the address as it is compared: bech32 lowercase (its case carries no
/// information), base58 untouched (its case does).
fn normalise_btc(address: &str) -> Result<String, IdentifierError> {
    let is_segwit = address
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("bc1"));
    if is_segwit {
        let (found_hrp, _, _) =
            segwit::decode(address).map_err(|_| invalid("bitcoin segwit address is not valid"))?;
        if found_hrp != hrp::BC {
            return Err(invalid("bitcoin segwit address is not a mainnet address"));
        }
        return Ok(address.to_ascii_lowercase());
    }
    let payload = bs58::decode(address)
        .with_check(None)
        .into_vec()
        .map_err(|e| match e {
            bs58::decode::Error::InvalidChecksum { .. } => {
                invalid("bitcoin address checksum does not match")
            }
            _ => invalid("bitcoin address is not valid base58check"),
        })?;
    if payload.len() != BTC_PAYLOAD_LEN || !BTC_VERSIONS.contains(&payload[0]) {
        return Err(invalid(
            "bitcoin address is not a mainnet p2pkh or p2sh address",
        ));
    }
    Ok(address.to_string())
}

/// Returns the 40 lowercase hex digits of an ethereum address.
fn normalise_eth(address: &str) -> Result<String, IdentifierError> {
    let hex_part = address
        .strip_prefix("0x")
        .or_else(|| address.strip_prefix("0X"))
        .ok_or_else(|| invalid("ethereum address does not start with 0x"))?;
    if hex_part.len() != ETH_HEX_LEN || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("ethereum address does not have 40 hex digits"));
    }
    let lower = hex_part.to_ascii_lowercase();
    let has_lower = hex_part.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = hex_part.bytes().any(|b| b.is_ascii_uppercase());
    // Mixed case claims an EIP-55 checksum, so a typo in it must not pass silently.
    if has_lower && has_upper && eip55_case(&lower) != hex_part {
        return Err(invalid("ethereum address checksum does not match"));
    }
    Ok(lower)
}

/// Applies the EIP-55 mixed-case checksum to 40 lowercase hex digits.
fn eip55_case(lower_hex: &str) -> String {
    let hash = Keccak256::digest(lower_hex.as_bytes());
    lower_hex
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0f;
            if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Encodes a 20-byte public key hash as a mainnet P2PKH base58check address
/// (no chain prefix); for test data and fixtures.
pub fn encode_btc_p2pkh(hash160: &[u8; 20]) -> String {
    bs58::encode(hash160).with_check_version(0x00).into_string()
}

/// Encodes 20 address bytes as an EIP-55 checksummed `0x…` ethereum address
/// (no chain prefix); for test data and fixtures.
pub fn encode_eth_eip55(address: &[u8; 20]) -> String {
    format!("0x{}", eip55_case(&hex::encode(address)))
}
