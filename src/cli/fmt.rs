//! Small formatting helpers for human-readable output.

pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

// ---- issue 14: terminal width and colour

use std::io::IsTerminal;
use std::sync::OnceLock;

/// What standard output is: a terminal's width in columns (`None` when it
/// is not a terminal: nothing is truncated then), and whether severities
/// are coloured (a terminal, and `NO_COLOR` unset or empty, no-color.org).
#[derive(Debug, Clone, Copy)]
pub struct Term {
    pub width: Option<usize>,
    pub colour: bool,
}

/// The terminal standard output is, once per process.
pub fn term() -> Term {
    static T: OnceLock<Term> = OnceLock::new();
    *T.get_or_init(|| {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let width = tty.then(|| terminal_size::terminal_size().map_or(80, |(w, _)| usize::from(w.0))).map(|w| w.max(40));
        Term { width, colour: tty && !no_color }
    })
}

/// `s` in at most `width` characters: the middle replaced by `…`, so the
/// start and the end (a path's file or value name) stay readable.
pub fn middle(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let keep = width - 1;
    let tail = keep.div_ceil(2);
    let head = keep - tail;
    let chars: Vec<char> = s.chars().collect();
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[n - tail..]);
    out
}

/// A registry path (`key\...\name`) in at most `width` characters: the
/// key part cut (two thirds kept from its start) and the last part kept whole when it leaves
/// room for a few characters of the key; otherwise [`middle`].
pub fn middle_path(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    match s.rsplit_once('\\') {
        // The key's first part tells rows apart (`TLS 1.2\Server`): it keeps two thirds.
        Some((key, name)) if name.chars().count() + 10 <= width => {
            let keep = width - name.chars().count() - 2;
            let head = (keep * 2).div_ceil(3);
            let k: Vec<char> = key.chars().collect();
            format!("{}…{}\\{name}", k[..head].iter().collect::<String>(), k[k.len() - (keep - head)..].iter().collect::<String>())
        }
        _ => middle(s, width),
    }
}

/// The ANSI style of a severity name.
fn severity_style(name: &str) -> anstyle::Style {
    use anstyle::{AnsiColor, Style};
    match name {
        "critical" => Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
        "high" => Style::new().fg_color(Some(AnsiColor::Red.into())),
        "medium" => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
        "low" => Style::new().fg_color(Some(AnsiColor::Cyan.into())),
        _ => Style::new(),
    }
}

/// A severity name, coloured when standard output is a colour terminal.
pub fn severity(name: &str) -> String {
    paint(term().colour, name)
}

/// A severity name padded to `width` columns (the padding is measured on
/// the name: escape codes take no columns), coloured on a colour terminal.
pub fn severity_padded(name: &str, width: usize) -> String {
    let pad = " ".repeat(width.saturating_sub(name.chars().count()));
    format!("{}{pad}", severity(name))
}

/// `name` in its severity colour when `colour`.
pub fn paint(colour: bool, name: &str) -> String {
    let st = severity_style(name);
    if colour && st != anstyle::Style::new() {
        format!("{}{name}{}", st.render(), st.render_reset())
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn middle_keeps_both_ends() {
        assert_eq!(middle("short", 10), "short");
        assert_eq!(middle("abcdefghij", 10), "abcdefghij");
        assert_eq!(middle("abcdefghijk", 10), "abcd…ghijk");
        let p = r"FirewallRules\RemoteDesktop-UserMode-In-TCP\Enabled";
        let m = middle(p, 24);
        assert_eq!(m.chars().count(), 24);
        assert!(m.starts_with("Firewall") && m.ends_with(r"TCP\Enabled"), "{m}");
        assert_eq!(middle("äöüßäöüß", 5), "äö…üß");
        assert_eq!(middle("abc", 1), "…");
        assert_eq!(middle("abc", 0), "");
    }

    #[test]
    fn middle_path_keeps_the_value_name() {
        let p = r"Terminal Server\WinStations\RDP-Tcp\fAllowSecProtocolNegotiation";
        let m = middle_path(p, 40);
        assert_eq!(m.chars().count(), 40);
        assert!(m.ends_with(r"\fAllowSecProtocolNegotiation") && m.starts_with("Term"), "{m}");
        assert_eq!(middle_path(r"a\b", 10), r"a\b");
        assert_eq!(middle_path(r"TLS 1.2\Server\Enabled", 20), r"TLS 1.2\…ver\Enabled");
        // No room for the whole name: plain middle cut.
        assert_eq!(middle_path(r"Terminal Server\fDenyTSConnections", 16).chars().count(), 16);
    }

    #[test]
    fn colour_only_when_asked() {
        assert_eq!(paint(false, "critical"), "critical");
        let c = paint(true, "critical");
        assert!(c.contains("\x1b[") && c.contains("critical"), "{c:?}");
        assert_eq!(paint(true, "info"), "info");
    }
}
