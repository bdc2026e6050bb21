//! `.windlassignore`: which files under a blueprint's directory stay out of its snapshot.
//!
//! Owns parsing and matching of gitignore-like patterns; it never touches the file system (the
//! caller reads the file and says whether a path is a directory). Rules, as in gitignore:
//! blank lines and lines starting with `#` are skipped (`\#` and `\!` start a literal pattern);
//! `!` re-includes what an earlier pattern excluded; the last matching pattern wins; a trailing
//! `/` matches directories only; a pattern with a `/` at its start or in its middle is anchored
//! to the blueprint's directory, one without matches a name at any depth; `*` matches any run of
//! characters but `/`, `?` one character but `/`, `[a-z]` / `[!a-z]` one character of (not of) a
//! set; `**/` matches any number of directories, `/**` at the end everything inside.
//! An excluded directory is not entered, so nothing under it can be re-included (git's rule).

/// One pattern line.
#[derive(Debug, Clone)]
struct Pattern {
    /// Path segments; `**` stands for any number of segments.
    segments: Vec<String>,
    negated: bool,
    dir_only: bool,
}

/// Patterns in file order; the last one matching a path decides.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Parse the text of an ignore file, after `defaults` (patterns in the same syntax, so the
    /// file can re-include what they exclude).
    pub fn parse(defaults: &[&str], text: &str) -> Ignore {
        let patterns = defaults
            .iter()
            .copied()
            .chain(text.lines())
            .filter_map(Pattern::parse)
            .collect();
        Ignore { patterns }
    }

    /// Whether `path` (relative to the root, `/`-separated) is excluded.
    pub fn excludes(&self, path: &str, is_dir: bool) -> bool {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        self.patterns
            .iter()
            .rev()
            .find(|p| (is_dir || !p.dir_only) && p.matches(&segments))
            .is_some_and(|p| !p.negated)
    }
}

impl Pattern {
    fn parse(line: &str) -> Option<Pattern> {
        let line = line.trim_end_matches([' ', '\t', '\r']);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (negated, line) = match line.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, line.strip_prefix('\\').unwrap_or(line)),
        };
        let (dir_only, line) = match line.strip_suffix('/') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let anchored = line.contains('/');
        let line = line.strip_prefix('/').unwrap_or(line);
        let mut segments: Vec<String> = line
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if segments.is_empty() {
            return None;
        }
        if !anchored {
            segments.insert(0, "**".to_string());
        }
        Some(Pattern {
            segments,
            negated,
            dir_only,
        })
    }

    fn matches(&self, path: &[&str]) -> bool {
        match_segments(&self.segments, path)
    }
}

/// Segment-wise match: `**` takes any number of path segments, except at the end of a
/// pattern, where it takes at least one (`dir/**` is what is inside `dir`, not `dir`).
fn match_segments(pattern: &[String], path: &[&str]) -> bool {
    let Some((first, rest)) = pattern.split_first() else {
        return path.is_empty();
    };
    if first == "**" {
        let min = usize::from(rest.is_empty());
        return (min..=path.len()).any(|skip| match_segments(rest, &path[skip..]));
    }
    match path.split_first() {
        Some((name, path_rest)) => match_name(first, name) && match_segments(rest, path_rest),
        None => false,
    }
}

/// One segment against one name: `*`, `?`, `[…]`, `\x` (a literal x).
fn match_name(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic wildcard matching with one backtrack point: the last `*` seen.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => Some(pi + 1),
                '[' => match_class(&p, pi, n[ni]),
                '\\' if pi + 1 < p.len() => (p[pi + 1] == n[ni]).then_some(pi + 2),
                c => (c == n[ni]).then_some(pi + 1),
            }
        } else {
            None
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((star_pi, star_ni))) => {
                pi = star_pi + 1;
                ni = star_ni + 1;
                star = Some((star_pi, star_ni + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A `[…]` set at `p[start]` against `c`: the index after the set when `c` is in it. An
/// unterminated `[` is a literal.
fn match_class(p: &[char], start: usize, c: char) -> Option<usize> {
    let Some(len) = p[start + 1..].iter().skip(1).position(|&x| x == ']') else {
        return (c == '[').then_some(start + 1);
    };
    let end = start + 2 + len; // index of the closing `]` (a `]` first in the set is literal)
    let mut body = &p[start + 1..end];
    let negated = matches!(body.first(), Some('!' | '^'));
    if negated {
        body = &body[1..];
    }
    let mut found = false;
    let mut i = 0;
    while i < body.len() {
        if i + 2 < body.len() && body[i + 1] == '-' {
            found |= body[i] <= c && c <= body[i + 2];
            i += 3;
        } else {
            found |= body[i] == c;
            i += 1;
        }
    }
    (found != negated).then_some(end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> Ignore {
        Ignore::parse(&[], text)
    }

    #[test]
    fn names_match_at_any_depth() {
        let i = ignore("state.db\n*.log\n");
        assert!(i.excludes("state.db", false));
        assert!(i.excludes("a/b/state.db", false));
        assert!(i.excludes("x.log", false));
        assert!(i.excludes("deep/er/x.log", false));
        assert!(!i.excludes("x.logs", false));
        assert!(!i.excludes("state.db.txt", false));
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let i = ignore("# a comment\n\n   \n\\#hash\n");
        assert!(!i.excludes("# a comment", false));
        assert!(i.excludes("#hash", false));
        assert_eq!(i.patterns.len(), 1);
    }

    #[test]
    fn slash_anchors_to_the_root() {
        let i = ignore("/build\ndocs/*.md\n");
        assert!(i.excludes("build", true));
        assert!(!i.excludes("sub/build", true));
        assert!(i.excludes("docs/a.md", false));
        assert!(!i.excludes("x/docs/a.md", false));
        assert!(!i.excludes("docs/sub/a.md", false), "* does not cross /");
    }

    #[test]
    fn trailing_slash_matches_directories_only() {
        let i = ignore("out/\n");
        assert!(i.excludes("out", true));
        assert!(i.excludes("a/out", true));
        assert!(!i.excludes("out", false));
    }

    #[test]
    fn question_mark_and_classes() {
        let i = ignore("file?.bin\ndata[0-9].csv\nv[!a].txt\n");
        assert!(i.excludes("file1.bin", false));
        assert!(!i.excludes("file12.bin", false));
        assert!(!i.excludes("file/.bin", false));
        assert!(i.excludes("data7.csv", false));
        assert!(!i.excludes("datax.csv", false));
        assert!(i.excludes("vb.txt", false));
        assert!(!i.excludes("va.txt", false));
    }

    #[test]
    fn double_star() {
        let i = ignore("**/cache\nlogs/**\na/**/z\n");
        assert!(i.excludes("cache", true));
        assert!(i.excludes("x/y/cache", false));
        assert!(i.excludes("logs/a", false));
        assert!(i.excludes("logs/a/b", false));
        assert!(!i.excludes("logs", true), "logs/** is what is inside logs");
        assert!(i.excludes("a/z", false));
        assert!(i.excludes("a/b/c/z", false));
        assert!(!i.excludes("b/a/z", false));
    }

    #[test]
    fn negation_re_includes_and_the_last_match_wins() {
        let i = ignore("*.bin\n!keep.bin\nsub/keep.bin\n");
        assert!(i.excludes("a.bin", false));
        assert!(!i.excludes("keep.bin", false));
        assert!(!i.excludes("x/keep.bin", false));
        assert!(i.excludes("sub/keep.bin", false));
        let literal = ignore("\\!important\n");
        assert!(literal.excludes("!important", false));
    }

    #[test]
    fn escapes_and_stars() {
        let i = ignore("a\\*b\n*mid*\n");
        assert!(i.excludes("a*b", false));
        assert!(!i.excludes("axb", false));
        assert!(i.excludes("the-mid-part", false));
        assert!(i.excludes("mid", false));
        assert!(!i.excludes("mi", false));
    }

    #[test]
    fn defaults_come_first_and_can_be_re_included() {
        let i = Ignore::parse(&[".*", "target"], "!.env\n");
        assert!(i.excludes(".git", true));
        assert!(i.excludes("sub/.hidden", false));
        assert!(i.excludes("target", true));
        assert!(!i.excludes(".env", false));
        assert!(!i.excludes("scripts/run.sh", false));
    }
}
