//! Query strings, read by hand: the few parameters the dashboard takes do
//! not justify another dependency.

use axum::http::Uri;

/// The decoded value of `name` in the URI's query, if present.
pub(super) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value))
    })
}

/// application/x-www-form-urlencoded: `+` is a space, `%XX` a byte; a `%`
/// without two hex digits stays as it is.
fn decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && hex(bytes[i + 1]).is_some() && hex(bytes[i + 2]).is_some() => {
                out.push(hex(bytes[i + 1]).unwrap_or(0) * 16 + hex(bytes[i + 2]).unwrap_or(0));
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded() {
        let uri: Uri = "/api/sweeps/q/table?format=json&baseline=block%3DB(3%2C3)&x=a+b".parse().unwrap();
        assert_eq!(query_param(&uri, "format").as_deref(), Some("json"));
        assert_eq!(query_param(&uri, "baseline").as_deref(), Some("block=B(3,3)"));
        assert_eq!(query_param(&uri, "x").as_deref(), Some("a b"));
        assert_eq!(query_param(&uri, "missing"), None);
        let odd: Uri = "/?t=%zz%4".parse().unwrap();
        assert_eq!(query_param(&odd, "t").as_deref(), Some("%zz%4"));
    }
}
