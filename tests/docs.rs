//! The documentation: every relative link in README.md and docs/*.md points at a file or directory
//! of the repository (and, for a `#fragment`, at a heading of the target), and no page refers to an
//! issue number, a folder outside the repository or the machine it was written on. Needs no cluster.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use regex::Regex;
use support::repo_root;

/// README.md and every Markdown file under docs/.
fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ holds no Markdown file");
    pages.extend(docs);
    pages
}

/// The page without fenced code blocks and inline code spans, where `[x](y)` is not a link.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if !fenced {
            out.push_str(line);
        }
        out.push('\n');
    }
    let double = Regex::new(r"``[^\n]*?``").unwrap().replace_all(&out, "``").into_owned();
    Regex::new(r"`[^`\n]*`").unwrap().replace_all(&double, "``").into_owned()
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens; a repeated
/// heading gets `-1`, `-2`, ….
fn anchors(text: &str) -> HashSet<String> {
    let link = Regex::new(r"\[([^\]]*)\]\([^)]*\)").unwrap();
    let mut seen = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(heading) = line.strip_prefix('#').filter(|_| !fenced) else { continue };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let heading = link.replace_all(heading.trim(), "$1");
        let base: String = heading
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let mut slug = base.clone();
        let mut n = 0;
        while seen.contains(&slug) {
            n += 1;
            slug = format!("{base}-{n}");
        }
        seen.insert(slug);
    }
    seen
}

fn display(path: &Path) -> String {
    path.strip_prefix(repo_root()).unwrap_or(path).display().to_string()
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let link = Regex::new(r#"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)"#).unwrap();
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for capture in link.captures_iter(&prose(&text)) {
            let target = &capture[1];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target, None),
            };
            let resolved = if path.is_empty() { page.clone() } else { page.parent().unwrap().join(path) };
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", display(&page)));
                continue;
            }
            if let Some(fragment) = fragment
                && resolved.extension().is_some_and(|e| e == "md")
                && !anchors(&std::fs::read_to_string(&resolved).unwrap()).contains(fragment)
            {
                broken.push(format!("{}: {target} (no heading #{fragment} in {})", display(&page), display(&resolved)));
            }
        }
    }
    assert!(checked > 0, "no relative link found: is the link pattern right?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_docs_name_no_issue_numbers_outside_folders_or_the_build_machine() {
    let forbidden = Regex::new(
        r"(?i)\bissues? #?\d+|(^|[\s(])#\d+([^\w-]|$)|\.\./shared|\bthis (\d+-core )?machine\b|\bthese machines\b|\bthis machine's\b",
    )
    .unwrap();
    let mut found = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (n, line) in text.lines().enumerate() {
            if let Some(m) = forbidden.find(line) {
                found.push(format!("{}:{}: {:?} in {line:?}", display(&page), n + 1, m.as_str()));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn anchors_follow_github() {
    let page = "# A\n## The operator's Microsoft permissions (least privilege)\n### 5. The first channel, in Manual mode\n\
                ## `kubectl connectemail`\n## Delegated `SMTP.Send` (default) versus the TAC guide's application `Mail.Send`\n## A\n";
    let found = anchors(page);
    for slug in [
        "a",
        "a-1",
        "the-operators-microsoft-permissions-least-privilege",
        "5-the-first-channel-in-manual-mode",
        "kubectl-connectemail",
        "delegated-smtpsend-default-versus-the-tac-guides-application-mailsend",
    ] {
        assert!(found.contains(slug), "{slug} not in {found:?}");
    }
}
