//! Metric names as MLflow keys. MLflow accepts keys matching `^[/\w.\- :]*$`; netsec's
//! per-class metrics carry class names as the data writes them, which may hold other
//! characters (CIC-IDS2017 has "Web Attack – Brute Force"). The class part is mapped
//! injectively into the safe alphabet — so two classes never share a key and
//! `experiment collect --from-mlflow` reads the original name back — while names already
//! safe are kept as they are: `:` is the escape character, written `::`, and any other
//! character outside `[A-Za-z0-9_./\- ]` becomes `:<hex code point>:`.

/// The MLflow key of metric `name` (a global metric name, or `class_<stat>.<class>`).
pub fn metric_key(name: &str) -> String {
    match split_class(name) {
        Some((prefix, class)) => format!("{prefix}.{}", encode_class(class)),
        None => name.to_owned(),
    }
}

/// The metric name of an MLflow key written by [`metric_key`]; `None` when the key's
/// class part is not a valid encoding.
pub fn metric_name(key: &str) -> Option<String> {
    match split_class(key) {
        Some((prefix, class)) => Some(format!("{prefix}.{}", decode_class(class)?)),
        None => Some(key.to_owned()),
    }
}

/// A class name in MLflow's key alphabet.
pub fn encode_class(class: &str) -> String {
    let mut out = String::with_capacity(class.len());
    for c in class.chars() {
        match c {
            ':' => out.push_str("::"),
            c if c.is_ascii_alphanumeric() || "_./- ".contains(c) => out.push(c),
            c => out.push_str(&format!(":{:x}:", u32::from(c))),
        }
    }
    out
}

/// The class name [`encode_class`] encoded.
pub fn decode_class(encoded: &str) -> Option<String> {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        if c != ':' {
            out.push(c);
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next()? {
                ':' if hex.is_empty() => {
                    out.push(':');
                    break;
                }
                ':' => {
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    break;
                }
                h if h.is_ascii_hexdigit() => hex.push(h),
                _ => return None,
            }
        }
    }
    Some(out)
}

/// `("class_recall", "dos")` of `class_recall.dos`; `None` for global names.
fn split_class(name: &str) -> Option<(&str, &str)> {
    [
        "class_precision",
        "class_recall",
        "class_f1",
        "class_support",
    ]
    .iter()
    .find_map(|prefix| {
        let class = name.strip_prefix(prefix)?.strip_prefix('.')?;
        Some((*prefix, class))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MLflow's own rule for metric keys.
    fn mlflow_accepts(key: &str) -> bool {
        key.chars()
            .all(|c| c.is_alphanumeric() || "_/.- :".contains(c))
    }

    #[test]
    fn safe_names_stay_and_others_round_trip_injectively() {
        assert_eq!(metric_key("macro_f1"), "macro_f1");
        assert_eq!(
            metric_key("class_recall.guess_passwd"),
            "class_recall.guess_passwd"
        );
        let names = [
            "Web Attack – Brute Force",
            "Web Attack - Brute Force",
            "a:b",
            "a::b",
            "a:3a:b",
            "DoS Hulk",
            "naïve,class",
            "",
        ];
        let keys: Vec<String> = names
            .iter()
            .map(|n| metric_key(&format!("class_f1.{n}")))
            .collect();
        for (name, key) in names.iter().zip(&keys) {
            assert!(key.is_ascii() && mlflow_accepts(key), "{key}");
            assert_eq!(metric_name(key).unwrap(), format!("class_f1.{name}"));
        }
        let mut distinct = keys.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), keys.len(), "{keys:?}");
        assert_eq!(
            metric_key("class_recall.Web Attack – Brute Force"),
            "class_recall.Web Attack :2013: Brute Force"
        );
        assert_eq!(metric_name("class_f1.bad:zz:"), None);
    }
}
