//! Just enough DER to read an X.509 certificate without a parser crate: the
//! issuer and subject Names (`aws check` orders the served chain with them)
//! and the validity and public key (`serve --dev-tls` checks the CA it keeps);
//! and the parts of a public key (`--public-key` converts PEM keys to JWKs).

use time::OffsetDateTime;

/// Reads a DER TLV: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The first fields of a certificate's TBSCertificate after its version, each a
/// whole TLV: serial, signature algorithm, issuer, validity, subject, key.
fn tbs_fields(der: &[u8]) -> Option<Vec<&[u8]>> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let mut fields = Vec::new();
    while !rest.is_empty() && fields.len() < 6 {
        let start = rest;
        let (tag, _, r) = tlv(rest)?;
        let whole = &start[..start.len() - r.len()];
        rest = r;
        if tag == 0xa0 && fields.is_empty() {
            continue; // [0] version
        }
        fields.push(whole);
    }
    Some(fields)
}

/// The raw issuer and subject Names of an X.509 certificate.
pub fn issuer_and_subject(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let fields = tbs_fields(der)?;
    Some((fields.get(2)?, fields.get(4)?))
}

/// The SubjectPublicKeyInfo of an X.509 certificate, whole.
pub fn subject_public_key_info(der: &[u8]) -> Option<&[u8]> {
    tbs_fields(der)?.get(5).copied()
}

/// The parts of a SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spki<'a> {
    /// The algorithm's OID, its content octets (e.g. `2A 86 48 CE 3D 02 01`
    /// for id-ecPublicKey).
    pub algorithm: &'a [u8],
    /// The content octets of an OID parameter (an EC key's curve), if any.
    pub curve: Option<&'a [u8]>,
    /// The public key's bits (a whole number of bytes).
    pub key: &'a [u8],
}

/// Reads a whole SubjectPublicKeyInfo: `SEQUENCE { SEQUENCE { OID, params }, BIT STRING }`.
pub fn spki(der: &[u8]) -> Option<Spki<'_>> {
    let (0x30, body, []) = tlv(der)? else {
        return None;
    };
    let (0x30, algorithm, rest) = tlv(body)? else {
        return None;
    };
    let (0x03, bits, []) = tlv(rest)? else {
        return None;
    };
    let (0x06, oid, params) = tlv(algorithm)? else {
        return None;
    };
    let curve = match tlv(params) {
        Some((0x06, curve, [])) => Some(curve),
        _ => None,
    };
    let (&0, key) = bits.split_first()? else {
        return None; // unused bits: no key we read has them
    };
    Some(Spki {
        algorithm: oid,
        curve,
        key,
    })
}

/// The modulus and exponent of a PKCS #1 RSAPublicKey, `SEQUENCE { INTEGER, INTEGER }`,
/// big-endian as encoded (with a leading zero when the top bit is set).
pub fn rsa_public_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, body, []) = tlv(der)? else {
        return None;
    };
    let (0x02, n, rest) = tlv(body)? else {
        return None;
    };
    let (0x02, e, []) = tlv(rest)? else {
        return None;
    };
    Some((n, e))
}

/// The validity of an X.509 certificate: (notBefore, notAfter).
pub fn validity(der: &[u8]) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let fields = tbs_fields(der)?;
    let (tag, content, _) = tlv(fields.get(3)?)?;
    if tag != 0x30 {
        return None;
    }
    let (tag1, not_before, rest) = tlv(content)?;
    let (tag2, not_after, rest) = tlv(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some((time(tag1, not_before)?, time(tag2, not_after)?))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, 1950-2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`), the two forms RFC 5280 §4.1.2.5 allows.
fn time(tag: u8, content: &[u8]) -> Option<OffsetDateTime> {
    let digits = std::str::from_utf8(content).ok()?.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i32 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let two = |i: usize| rest[i..i + 2].parse::<u8>().ok();
    let month = time::Month::try_from(two(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, two(2)?).ok()?;
    Some(date.with_hms(two(4)?, two(6)?, two(8)?).ok()?.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_names_are_found() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "leaf");
        let cert = params.self_signed(&key).unwrap();
        let (iss, sub) = issuer_and_subject(cert.der()).unwrap();
        assert_eq!(iss, sub, "self-signed");
        assert!(sub.windows(4).any(|w| w == b"leaf"));
        assert!(issuer_and_subject(b"\x30\x03\x02\x01\x01").is_none());
        assert!(tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
    }

    #[test]
    fn a_public_key_info_is_taken_apart() {
        let key = rcgen::KeyPair::generate().unwrap(); // P-256
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = subject_public_key_info(cert.der()).unwrap();
        let info = spki(der).unwrap();
        assert_eq!(info.algorithm, [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);
        assert_eq!(
            info.curve,
            Some(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07][..])
        );
        assert_eq!(info.key, key.public_key_raw());
        assert_eq!(spki(&der[..der.len() - 1]), None);
        assert_eq!(spki(&[der, &[0]].concat()), None, "trailing bytes");
        assert_eq!(
            rsa_public_key(b"\x30\x06\x02\x01\x05\x02\x01\x03"),
            Some((&[5][..], &[3][..]))
        );
        assert_eq!(rsa_public_key(b"\x30\x03\x02\x01\x05"), None);
    }

    #[test]
    fn validity_reads_both_time_forms() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let at = |y, mo, d, h, mi, s| {
            rcgen::date_time_ymd(y, mo, d).replace_time(time::Time::from_hms(h, mi, s).unwrap())
        };
        // rcgen writes UTCTime up to 2049 and GeneralizedTime from 2050.
        for (not_before, not_after) in [
            (at(2024, 2, 29, 3, 4, 5), at(2049, 12, 31, 23, 59, 59)),
            (at(1950, 1, 1, 0, 0, 0), at(2050, 1, 1, 0, 0, 0)),
            (at(1975, 1, 1, 0, 0, 0), at(4096, 1, 1, 0, 0, 0)),
        ] {
            params.not_before = not_before;
            params.not_after = not_after;
            let cert = params.self_signed(&key).unwrap();
            assert_eq!(validity(cert.der()), Some((not_before, not_after)));
        }
        assert_eq!(validity(b"\x30\x03\x02\x01\x01"), None);
        for (tag, text) in [
            (0x17, "491231235959"),
            (0x17, "4912312359Z"),
            (0x18, "491231235959Z"),
            (0x17, "491331235959Z"),
            (0x17, "4912312359+9Z"),
        ] {
            assert_eq!(time(tag, text.as_bytes()), None, "{text}");
        }
    }
}
