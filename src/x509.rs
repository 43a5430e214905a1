//! Just enough DER to read an X.509 certificate without a parser crate: the
//! issuer and subject Names (`aws check` orders the served chain with them).

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

/// The raw issuer and subject Names of an X.509 certificate.
pub fn issuer_and_subject(der: &[u8]) -> Option<(&[u8], &[u8])> {
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
    // serial, signature algorithm, issuer, validity, subject
    Some((fields.get(2)?, fields.get(4)?))
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
}
