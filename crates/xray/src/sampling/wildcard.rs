//! The wildcard patterns of sampling rules (xray-spec §4.3): `*` matches any run of characters
//! (including none), `?` exactly one; the whole text must match; case-insensitive.

/// Whether `text` matches `pattern`.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    // Methods, paths and host names are ASCII: compared as bytes, ignoring ASCII case, with no
    // allocation (this runs for every rule a request is tried against).
    if pattern.is_ascii() && text.is_ascii() {
        return glob(pattern.as_bytes(), text.as_bytes(), b'*', b'?', |p, t| {
            p.eq_ignore_ascii_case(t)
        });
    }
    let pattern: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let text: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    glob(&pattern, &text, '*', '?', |p, t| p == t)
}

/// Whether `text` matches `pattern`, where `star` matches any run and `any` one item, and
/// `same` says whether two other items match.
fn glob<T: Copy + PartialEq>(
    pattern: &[T],
    text: &[T],
    star_item: T,
    any: T,
    same: impl Fn(&T, &T) -> bool,
) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the text position it was tried at: on a mismatch, let that star
    // swallow one more character and retry. One backtrack point suffices for `*`/`?` patterns.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == any || same(&pattern[p], &text[t])) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == star_item {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == star_item)
}

#[cfg(test)]
mod tests {
    use super::wildcard_match as m;

    #[test]
    fn literals_match_whole_strings_case_insensitively() {
        assert!(m("/health", "/health"));
        assert!(m("/HEALTH", "/health"));
        assert!(m("GET", "get"));
        assert!(!m("/health", "/healthz"));
        assert!(!m("/health", "/api/health"));
        assert!(m("", ""));
        assert!(!m("", "x"));
        assert!(!m("x", ""));
    }

    #[test]
    fn star_matches_any_run_including_none() {
        assert!(m("*", ""));
        assert!(m("*", "anything at all"));
        assert!(m("/api/*", "/api/"));
        assert!(m("/api/*", "/api/move/up"));
        assert!(!m("/api/*", "/api"));
        assert!(m("*.example.com", "www.example.com"));
        assert!(!m("*.example.com", "example.com"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("**", "x"));
        assert!(m("*a", "aaa"));
        assert!(m("*ab", "aab"));
        assert!(!m("*ab", "aba"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(m("/v?/items", "/v1/items"));
        assert!(!m("/v?/items", "/v10/items"));
        assert!(!m("?", ""));
        assert!(m("?*", "x"));
        assert!(m("é?", "Éa"));
    }

    #[test]
    fn pathological_patterns_finish_quickly() {
        let text = "a".repeat(5000);
        assert!(!m(&format!("{}b", "*a".repeat(50)), &text));
    }
}
