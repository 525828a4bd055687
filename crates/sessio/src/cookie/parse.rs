//! Reading the session cookie from `Cookie` headers, with express-session's rules.
//!
//! Everything here takes bytes a client chose: it never panics and never allocates.

/// Whether `encodeURIComponent` escapes `byte`: all but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`
/// (every byte of a non-ASCII character included).
const fn escaped(byte: u8) -> bool {
    !(byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        ))
}

/// [`escaped`] for every byte, looked up rather than computed per byte of a value.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = escaped(byte as u8);
        byte += 1;
    }
    table
};

/// Percent-encodes a cookie value exactly like `encodeURIComponent`.
#[cfg(test)]
pub(crate) fn encode_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_encoded(&mut out, value);
    out
}

/// Appends `value` percent-encoded exactly like `encodeURIComponent`.
pub(crate) fn push_encoded(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // Runs of bytes that need no escape are copied whole; a signed id has a few escapes.
    let mut rest = value;
    while let Some(at) = rest.bytes().position(|byte| ESCAPED[usize::from(byte)]) {
        out.push_str(&rest[..at]);
        let mut end = at + 1;
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        for byte in rest[at..end].bytes() {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
}

/// The longest cookie value read, in bytes as sent: a longer one is skipped before any
/// decoding or signature check. A signed session id takes about 90.
pub(crate) const MAX_VALUE_LEN: usize = 512;

/// How many cookies of one name a request's headers may carry before the rest are
/// ignored: each costs a signature check per secret.
pub(crate) const MAX_VALUES: usize = 4;

/// Hands `read` each value of a cookie called `name` across all `headers`, in order,
/// decoded: at most [`MAX_VALUES`] of them, skipping values longer than [`MAX_VALUE_LEN`].
///
/// As in express-session: pairs split on `;`, names and values trimmed, surrounding
/// double quotes are stripped, and the value is percent-decoded only when it contains
/// `%` (a value that fails to decode is kept as sent). A value that is not UTF-8 (after
/// decoding, when it decodes) is never read. Unlike express-session, later values of the
/// same name are read too, so that a cookie planted beside the real one (by a sibling
/// subdomain, say) cannot hide it.
///
/// The value is lent rather than returned so that decoding needs no allocation: a
/// session cookie is decoded on the stack.
pub(crate) fn for_each_cookie<'a, I>(headers: I, name: &str, mut read: impl FnMut(&str))
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let values = headers.into_iter().flat_map(pairs).filter_map(|pair| {
        let eq = memchr::memchr(b'=', pair)?;
        (trim(&pair[..eq]) == name.as_bytes()).then(|| trim(&pair[eq + 1..]))
    });
    for raw in values.take(MAX_VALUES) {
        let raw = match raw {
            [b'"', inner @ .., b'"'] => inner,
            other => other,
        };
        if raw.len() > MAX_VALUE_LEN {
            continue;
        }
        // Decoding checks its output is UTF-8, so the input is checked only when it is kept.
        if memchr::memchr(b'%', raw).is_some() {
            // Decoding never lengthens a value, and a value fits in the stack buffer.
            let mut buf = [0u8; MAX_VALUE_LEN];
            if let Some(decoded) = decode_uri_component(raw, &mut buf[..raw.len()]) {
                read(decoded);
                continue;
            }
        }
        if let Ok(value) = std::str::from_utf8(raw) {
            read(value);
        }
    }
}

/// The `;`-separated parts of a header, found with SIMD (`memchr`).
fn pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let current = rest?;
        Some(match memchr::memchr(b';', current) {
            Some(at) => {
                rest = Some(&current[at + 1..]);
                &current[..at]
            }
            None => {
                rest = None;
                current
            }
        })
    })
}

fn trim(bytes: &[u8]) -> &[u8] {
    // The cookie module trims JavaScript whitespace; in headers only space and tab occur.
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// Strict `decodeURIComponent` into `out` (at least as long as `input`): `None` on a
/// malformed escape or invalid UTF-8.
fn decode_uri_component<'b>(input: &[u8], out: &'b mut [u8]) -> Option<&'b str> {
    fn copy(out: &mut [u8], bytes: &[u8], len: &mut usize) {
        out[*len..*len + bytes.len()].copy_from_slice(bytes);
        *len += bytes.len();
    }
    let mut len = 0;
    let mut rest = input;
    // Copy the runs between escapes whole: a session cookie has a few escapes in 80 bytes.
    while let Some(at) = memchr::memchr(b'%', rest) {
        copy(out, &rest[..at], &mut len);
        let (hi, lo) = match rest.get(at + 1..at + 3)? {
            &[hi, lo] => (hex_digit(hi)?, hex_digit(lo)?),
            _ => return None,
        };
        copy(out, &[hi << 4 | lo], &mut len);
        rest = &rest[at + 3..];
    }
    copy(out, rest, &mut len);
    std::str::from_utf8(&out[..len]).ok()
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn find(headers: &[&str], name: &str) -> Option<String> {
        find_bytes(headers.iter().map(|h| h.as_bytes()), name)
    }

    fn find_bytes<'a>(headers: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Option<String> {
        all_bytes(headers, name).into_iter().next()
    }

    fn all(headers: &[&str], name: &str) -> Vec<String> {
        all_bytes(headers.iter().map(|h| h.as_bytes()), name)
    }

    fn all_bytes<'a>(headers: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Vec<String> {
        let mut found = Vec::new();
        for_each_cookie(headers, name, |value| found.push(value.to_owned()));
        found
    }

    #[test]
    fn encodes_like_encode_uri_component() {
        assert_eq!(
            encode_value("s:apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU"),
            "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"
        );
        assert_eq!(encode_value("%"), "%25");
        assert_eq!(encode_value("-_.!~*'()"), "-_.!~*'()");
        assert_eq!(encode_value("a b;é"), "a%20b%3B%C3%A9");
    }

    #[test]
    fn escape_table_keeps_exactly_the_unreserved_marks() {
        for byte in 0..=u8::MAX {
            let unreserved = byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte);
            assert_eq!(ESCAPED[usize::from(byte)], !unreserved, "byte {byte:#04x}");
        }
    }

    #[test]
    fn finds_the_named_cookie() {
        assert_eq!(find(&["a=1; sid=xyz; b=2"], "sid").as_deref(), Some("xyz"));
        assert_eq!(find(&["a=1", "sid = xyz "], "sid").as_deref(), Some("xyz"));
        assert_eq!(find(&["a=1; b=2"], "sid"), None);
        assert_eq!(find(&[], "sid"), None);
    }

    #[test]
    fn every_occurrence_is_read_in_order_across_headers() {
        assert_eq!(all(&["sid=first; sid=second"], "sid"), ["first", "second"]);
        assert_eq!(
            all(&["x=1", "sid=first", "a=2; sid=second"], "sid"),
            ["first", "second"]
        );
    }

    #[test]
    fn at_most_a_few_occurrences_are_read() {
        let header = (0..100)
            .map(|i| format!("sid={i}"))
            .collect::<Vec<_>>()
            .join("; ");
        assert_eq!(all(&[&header], "sid"), ["0", "1", "2", "3"]);
        assert_eq!(MAX_VALUES, 4);
    }

    #[test]
    fn values_over_the_limit_are_skipped_before_decoding() {
        let at_limit = "a".repeat(MAX_VALUE_LEN);
        let over = "%41".repeat(MAX_VALUE_LEN / 3 + 1);
        assert_eq!(
            all(&[&format!("sid={over}; sid={at_limit}")], "sid"),
            [at_limit.as_str()]
        );
        // Quotes are not counted.
        assert_eq!(all(&[&format!("sid=\"{at_limit}\"")], "sid"), [at_limit]);
        assert!(all(&[&format!("sid={}", "a".repeat(300_000))], "sid").is_empty());
    }

    #[test]
    fn quotes_are_stripped_and_percent_decoded_only_when_present() {
        assert_eq!(find(&["sid=\"abc\""], "sid").as_deref(), Some("abc"));
        assert_eq!(find(&["sid=s%3Aabc"], "sid").as_deref(), Some("s:abc"));
        assert_eq!(find(&["sid=a+b"], "sid").as_deref(), Some("a+b"));
    }

    #[test]
    fn failed_decoding_keeps_the_raw_value() {
        assert_eq!(find(&["sid=%zz%41"], "sid").as_deref(), Some("%zz%41"));
        assert_eq!(find(&["sid=%41%"], "sid").as_deref(), Some("%41%"));
        assert_eq!(find(&["sid=%C3%28"], "sid").as_deref(), Some("%C3%28"));
    }

    #[test]
    fn pairs_without_equals_and_non_utf8_values_are_ignored() {
        assert_eq!(find(&["sid; sid=ok"], "sid").as_deref(), Some("ok"));
        assert_eq!(find_bytes([&b"sid=\xff\xfe"[..]], "sid"), None);
        assert_eq!(find_bytes([&b"sid=\xff%41"[..]], "sid"), None);
        // UTF-8 once decoded: what counts is the value the signature is checked on.
        assert_eq!(
            find_bytes([&b"sid=%C3\xa9"[..]], "sid").as_deref(),
            Some("\u{e9}")
        );
    }

    #[test]
    fn values_up_to_the_limit_decode() {
        for len in [MAX_VALUE_LEN - 3, MAX_VALUE_LEN - 1, MAX_VALUE_LEN] {
            let value = "+".repeat(len / 3) + &"a".repeat(len % 3);
            let encoded = encode_value(&value);
            assert_eq!(encoded.len(), len);
            assert_eq!(find(&[&format!("sid={encoded}")], "sid"), Some(value));
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_headers(headers in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..4)) {
            let _ = find_bytes(headers.iter().map(Vec::as_slice), "connect.sid");
        }

        /// Values with escapes, valid or not, on both sides of the stack buffer's size,
        /// against a plain decoder.
        #[test]
        fn decoding_matches_a_plain_decoder(
            value in prop::collection::vec(
                prop_oneof![Just(b'%'), Just(b'4'), Just(b'c'), Just(b'3'), Just(b'a'), any::<u8>()],
                0..MAX_VALUE_LEN,
            )
        ) {
            // Nothing that splitting, trimming or unquoting would touch.
            let value: Vec<u8> = value
                .into_iter()
                .map(|b| if matches!(b, b';' | b' ' | b'\t' | b'"') { b'x' } else { b })
                .collect();
            let mut header = b"sid=".to_vec();
            header.extend_from_slice(&value);
            let plain = |input: &[u8]| -> Option<String> {
                let mut out = Vec::new();
                let mut i = 0;
                while i < input.len() {
                    if input[i] == b'%' {
                        let hex = input.get(i + 1..i + 3)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        let hex = std::str::from_utf8(hex).ok()?;
                        out.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 3;
                    } else {
                        out.push(input[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).ok()
            };
            let expected = if value.contains(&b'%') {
                plain(&value).or_else(|| String::from_utf8(value.clone()).ok())
            } else {
                String::from_utf8(value.clone()).ok()
            };
            prop_assert_eq!(find_bytes([&header[..]], "sid"), expected);
        }

        #[test]
        fn encoded_values_decode_back(value in "\\PC{0,64}") {
            let header = format!("connect.sid={}", encode_value(&value));
            prop_assert_eq!(find(&[&header], "connect.sid"), Some(value));
        }
    }
}
