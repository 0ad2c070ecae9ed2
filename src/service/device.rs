//! A human label for a User-Agent, such as "Firefox 131 on Linux".
//!
//! Parsed with `woothee`: pure Rust, no pattern file to ship or load at
//! start-up. A parse still takes microseconds (regular expressions), and
//! every listed session asks for its label, while a user's sessions share
//! a handful of User-Agents: labels are kept by User-Agent.

use std::sync::OnceLock;

use crate::{cache::BoundedMap, service::session::MAX_USER_AGENT_LEN};

fn parser() -> &'static woothee::parser::Parser {
    static PARSER: OnceLock<woothee::parser::Parser> = OnceLock::new();
    PARSER.get_or_init(woothee::parser::Parser::new)
}

const UNKNOWN: &str = "UNKNOWN";
/// Distinct User-Agents whose labels are kept.
const MAX_LABELS: usize = 4096;

/// The label, or `None` when the User-Agent says nothing recognisable.
pub fn label(user_agent: &str) -> Option<String> {
    static LABELS: OnceLock<BoundedMap<Option<String>>> = OnceLock::new();
    LABELS
        .get_or_init(|| BoundedMap::new(MAX_LABELS, MAX_USER_AGENT_LEN))
        .get_or_insert_with(user_agent, || parse(user_agent))
}

fn parse(user_agent: &str) -> Option<String> {
    let parsed = parser().parse(user_agent)?;
    if parsed.name == UNKNOWN {
        return None;
    }
    if parsed.category == "misc" || parsed.category == "crawler" {
        // "HTTP Library" with version "curl" and the like: the version names
        // the client better than the name does.
        let client = if parsed.version != UNKNOWN {
            parsed.version
        } else {
            parsed.name
        };
        return Some(client.to_owned());
    }
    let browser = match parsed.version.split('.').next() {
        Some(major) if parsed.version != UNKNOWN && !major.is_empty() => {
            format!("{} {major}", parsed.name)
        }
        _ => parsed.name.to_owned(),
    };
    let os = match parsed.os {
        "iPhone" | "iPad" | "iPod" => "iOS",
        "Mac OSX" => "macOS",
        UNKNOWN => return Some(browser),
        other => other,
    };
    Some(format!("{browser} on {os}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers_get_readable_labels() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
                "Firefox 131 on Linux",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari 17 on iOS",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0",
                "Edge 129 on Windows 10",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Mobile Safari/537.36",
                "Chrome 129 on Android",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
                "Safari 17 on macOS",
            ),
            ("curl/8.5.0", "curl"),
        ];
        for (ua, expected) in cases {
            assert_eq!(label(ua).as_deref(), Some(expected), "{ua}");
        }
    }

    #[test]
    fn unrecognisable_agents_have_no_label() {
        assert_eq!(label(""), None);
        assert_eq!(label("test-client/1.0"), None);
    }
}
