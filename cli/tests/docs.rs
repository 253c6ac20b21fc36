//! The docs cannot drift from the code: every `widesweep ...` command line
//! shown in README.md and docs/ parses with the real CLI (clap's parser, no
//! execution), every relative link and repository path they mention exists,
//! and every example spec they show or the repository ships parses and plans.

use std::path::{Path, PathBuf};

use clap::Parser;
use widesweep::Cli;
use widesweep_coordinator::plan::PlanReport;
use widesweep_coordinator::spec::Spec;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// README.md, ARCHITECTURE.md, BENCHMARKS.md and every Markdown file in
/// docs/, with their text.
fn documents() -> Vec<(PathBuf, String)> {
    let root = root();
    let mut paths: Vec<PathBuf> =
        ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"].iter().map(|name| root.join(name)).collect();
    let mut guides: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    guides.sort();
    assert!(guides.len() >= 8, "docs/ holds the guides the README links to: {guides:?}");
    paths.extend(guides);
    paths.into_iter().map(|path| (path.clone(), std::fs::read_to_string(&path).unwrap())).collect()
}

/// The fenced code blocks of a Markdown text: (info string, first line
/// number, body).
fn code_blocks(text: &str) -> Vec<(String, usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match open.take() {
                Some(block) => blocks.push(block),
                None => open = Some((info.trim().to_string(), number + 2, String::new())),
            }
        } else if let Some((_, _, body)) = open.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    blocks
}

/// Shell lines with their continuations (`\` at the end) joined.
fn shell_lines(body: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in body.lines() {
        match line.trim_end().strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// One shell line cut into its commands: at unquoted `;`, `|`, `&` (and
/// `&&`, `||`), a comment cut off, output redirections dropped.
fn shell_commands(line: &str) -> Vec<Vec<String>> {
    let mut pieces = vec![String::new()];
    let (mut single, mut double) = (false, false);
    let mut previous = ' ';
    for c in line.chars() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => break,
            ';' | '|' | '&' if !single && !double && previous != '>' => {
                pieces.push(String::new());
                previous = ' ';
                continue;
            }
            _ => {}
        }
        pieces.last_mut().unwrap().push(c);
        previous = c;
    }
    pieces
        .iter()
        .filter_map(|piece| shlex::split(&expand_variables(piece)))
        .map(|words| {
            let mut kept = Vec::new();
            let mut words = words.into_iter();
            while let Some(word) = words.next() {
                if word == ">" || word == "2>" || word == "<" {
                    words.next();
                } else if !word.starts_with('>') && !word.starts_with("2>") {
                    kept.push(word);
                }
            }
            kept
        })
        .filter(|words| !words.is_empty())
        .collect()
}

/// Shell variables (`$seed`, `${DB}`) stand for values the docs do not
/// show: each is read as `1`, which every argument that takes a count or a
/// name accepts.
fn expand_variables(piece: &str) -> String {
    let mut out = String::new();
    let mut chars = piece.chars().peekable();
    while let Some(c) = chars.next() {
        let starts_name = chars.peek().is_some_and(|n| n.is_ascii_alphabetic() || *n == '_' || *n == '{');
        if c != '$' || !starts_name {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.by_ref().find(|n| *n == '}');
        } else {
            while chars.peek().is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_') {
                chars.next();
            }
        }
        out.push('1');
    }
    out
}

/// The `widesweep` invocation of a command, if it is one: what follows the
/// program's name, past environment assignments and wrappers such as
/// `srun` or `exec`.
fn widesweep_args(words: &[String]) -> Option<Vec<String>> {
    let mut words = words.iter().skip_while(|w| w.starts_with('$') && w.len() == 1).peekable();
    while let Some(word) = words.peek() {
        let is_assignment = word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        });
        if is_assignment || ["srun", "exec", "nohup", "time", "env"].contains(&word.as_str()) {
            words.next();
        } else {
            break;
        }
    }
    let program = words.next()?;
    (program == "widesweep" || program.ends_with("/widesweep")).then(|| words.cloned().collect())
}

struct Invocation {
    place: String,
    args: Vec<String>,
}

fn documented_invocations() -> Vec<Invocation> {
    let root = root();
    let mut found = Vec::new();
    for (path, text) in documents() {
        let name = path.strip_prefix(&root).unwrap().display().to_string();
        for (info, first_line, body) in code_blocks(&text) {
            if !matches!(info.as_str(), "" | "sh" | "bash" | "console" | "shell") {
                continue;
            }
            for line in shell_lines(&body) {
                for words in shell_commands(&line) {
                    if let Some(args) = widesweep_args(&words) {
                        found.push(Invocation { place: format!("{name} (block at line {first_line}): {line}"), args });
                    }
                }
            }
        }
    }
    found
}

/// Why clap refuses a command line, or `None` when it parses (a help or
/// version request counts as parsing).
fn parse_error(args: &[String]) -> Option<String> {
    let argv = std::iter::once("widesweep".to_string()).chain(args.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(_) => None,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

#[test]
fn every_documented_command_line_parses() {
    let invocations = documented_invocations();
    assert!(invocations.len() >= 40, "the docs show their commands: found only {}", invocations.len());
    let mut subcommands: Vec<&str> = invocations.iter().filter_map(|i| i.args.first().map(String::as_str)).collect();
    subcommands.sort_unstable();
    subcommands.dedup();
    for expected in ["run", "serve", "work", "submit", "status", "table", "sql", "export", "plot", "plan", "launch"] {
        assert!(
            subcommands.contains(&expected),
            "no documented `widesweep {expected}` line was found: {subcommands:?}"
        );
    }
    let refused: Vec<String> = invocations
        .iter()
        .filter_map(|i| parse_error(&i.args).map(|error| format!("{}\n  {}", i.place, error.trim())))
        .collect();
    assert!(refused.is_empty(), "documented command lines the CLI refuses:\n{}", refused.join("\n\n"));
}

/// The check itself: a renamed flag in a documented line is caught.
#[test]
fn a_renamed_flag_is_refused() {
    let line = "widesweep table quickstart --db sqlite://widesweep.db --baseline 'block=B(3,3)'";
    let words = &shell_commands(line)[0];
    let args = widesweep_args(words).unwrap();
    assert_eq!(parse_error(&args), None);
    let renamed: Vec<String> =
        args.iter().map(|a| if a == "--baseline" { "--base".into() } else { a.clone() }).collect();
    let error = parse_error(&renamed).expect("an unknown flag must be refused");
    assert!(error.contains("--base"), "{error}");
}

#[test]
fn shell_lines_are_cut_into_commands() {
    let line = "widesweep pause a; widesweep resume a && widesweep export a --format csv > a.csv  # two";
    let commands = shell_commands(line);
    let args: Vec<Vec<String>> = commands.iter().filter_map(|w| widesweep_args(w)).collect();
    assert_eq!(args, vec![vec!["pause", "a"], vec!["resume", "a"], vec!["export", "a", "--format", "csv"]]);
    let quoted = shell_commands("WIDESWEEP_TOKEN=x srun widesweep sql \"SELECT 1; -- # not a comment\"");
    assert_eq!(widesweep_args(&quoted[0]).unwrap(), vec!["sql", "SELECT 1; -- # not a comment"]);
}

/// Relative link targets of a Markdown text: `[text](target)`.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            let target = rest[..end].split_whitespace().next().unwrap_or_default();
            if !target.contains("://") && !target.starts_with("mailto:") && !target.is_empty() {
                found.push(target.to_string());
            }
        }
    }
    found
}

/// A heading's anchor as GitHub makes it.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    let mut inside_code = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            inside_code = !inside_code;
        } else if !inside_code && line.starts_with('#') {
            found.push(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for (path, text) in documents() {
        let dir = path.parent().unwrap();
        for target in links(&text) {
            let (file, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if file.is_empty() { path.clone() } else { dir.join(file) };
            checked += 1;
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", path.display()));
            } else if !fragment.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
                let target_text = std::fs::read_to_string(&resolved).unwrap();
                if !anchors(&target_text).contains(&fragment.to_string()) {
                    broken.push(format!("{}: {target} (no heading with that anchor)", path.display()));
                }
            }
        }
    }
    assert!(checked >= 20, "the README links to its guides: only {checked} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The repository's top-level folders a path in the docs may start with.
const TOP_FOLDERS: [&str; 13] = [
    "arch/",
    "bench/",
    "cli/",
    "coordinator/",
    "deploy/",
    "docs/",
    "examples/",
    "migrations/",
    "proto/",
    "python/",
    "scripts/",
    "vendor/",
    "worker/",
];

/// Words of the docs that name a file or folder of the repository, e.g.
/// `examples/quickstart.toml` or `coordinator/src/store/`.
fn repository_paths(text: &str) -> Vec<String> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-');
    let mut found = Vec::new();
    for (start, _) in text.char_indices() {
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| is_path_char(c) || c == '$' || c == '~') {
            continue;
        }
        let rest = &text[start..];
        if !TOP_FOLDERS.iter().any(|folder| rest.starts_with(folder)) {
            continue;
        }
        let end = rest.find(|c: char| !is_path_char(c)).unwrap_or(rest.len());
        let after = rest[end..].chars().next();
        // Placeholders and patterns (`docs/<name>.md`, `migrations/*/`) name no one file.
        if after.is_some_and(|c| matches!(c, '<' | '*' | '{' | '$')) {
            continue;
        }
        found.push(rest[..end].trim_end_matches(['.', '-']).to_string());
    }
    found
}

#[test]
fn every_repository_path_the_docs_name_exists() {
    let root = root();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (path, text) in documents() {
        for named in repository_paths(&text) {
            checked += 1;
            if !root.join(&named).exists() {
                missing.push(format!("{}: {named}", path.strip_prefix(&root).unwrap().display()));
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(checked >= 30, "the docs name the repository's files: only {checked} found");
    assert!(missing.is_empty(), "paths the docs name that are not in the repository:\n{}", missing.join("\n"));
}

fn plans(place: &str, text: &str) -> Result<(), String> {
    let spec = Spec::parse(text).map_err(|e| format!("{place}: does not parse: {e}"))?;
    PlanReport::new(&spec, true, None).map_err(|e| format!("{place}: does not plan: {e}"))?;
    Ok(())
}

#[test]
fn every_example_spec_parses_and_plans() {
    let root = root();
    let mut specs = Vec::new();
    let mut folders = vec![root.join("examples")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                specs.push(path);
            }
        }
    }
    assert!(specs.len() >= 10, "examples/ ships the quickstart and the paper's specs: {specs:?}");
    let mut failures = Vec::new();
    for path in &specs {
        if let Err(error) = plans(&path.display().to_string(), &std::fs::read_to_string(path).unwrap()) {
            failures.push(error);
        }
    }
    // A whole spec shown in the docs (one that names its sweep) must be one.
    let mut shown = 0;
    for (path, text) in documents() {
        for (info, line, body) in code_blocks(&text) {
            if info == "toml" && body.lines().any(|l| l.starts_with("name = ")) {
                shown += 1;
                if let Err(error) = plans(&format!("{} (block at line {line})", path.display()), &body) {
                    failures.push(error);
                }
            }
        }
    }
    assert!(shown >= 1, "the spec reference shows a whole spec");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
