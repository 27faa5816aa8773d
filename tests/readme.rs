//! The README (and docs/benchmarks.md, whose commands it points to) keeps
//! its word:
//! - every command line in a `sh` block runs here: `switchboard` with
//!   options its `--help` lists, `cargo` with packages, tests, benches,
//!   examples and fuzz targets that exist, the load tool with modes and
//!   options it has, `tools/...` scripts that exist, are executable and take
//!   the options given, and no command this test does not know;
//! - every repository path in a command, a link or an inline code span
//!   exists;
//! - every `toml` block passes `--check-config`;
//! - every `nginx` and `haproxy` block is a verbatim part of the recipe in
//!   docs/deploy/ that the interop suite runs;
//! - the log lines under "Logs" are the lines switchboard writes.
//!
//! (The configuration sample under "Configuration" is also checked in
//! tests/cli.rs.)

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::bosh_client::BoshSession;
use support::{StubOptions, StubServer, WsClient};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The documents whose commands are checked.
const DOCUMENTS: [&str; 2] = ["README.md", "docs/benchmarks.md"];
/// Commands run as they are written, with no repository-specific part.
const PLAIN_COMMANDS: [&str; 5] = ["curl", "ulimit", "kill", "wait", "export"];

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// A fenced block: its language, its text, and the line it starts on.
struct Block {
    lang: String,
    text: String,
    line: usize,
}

/// The fenced blocks of a Markdown text, and its prose (everything else).
fn blocks(markdown: &str) -> (Vec<Block>, String) {
    let mut blocks = Vec::new();
    let mut prose = String::new();
    let mut current: Option<Block> = None;
    for (n, line) in markdown.lines().enumerate() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(lang)) => {
                current = Some(Block {
                    lang: lang.trim().to_string(),
                    text: String::new(),
                    line: n + 1,
                })
            }
            (Some(_), Some(_)) => blocks.push(current.take().unwrap()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    assert!(current.is_none(), "a fenced block is not closed");
    (blocks, prose)
}

fn blocks_of(lang: &str) -> Vec<(&'static str, Block)> {
    DOCUMENTS
        .iter()
        .flat_map(|doc| {
            blocks(&read(doc))
                .0
                .into_iter()
                .filter(|b| b.lang == lang)
                .map(move |b| (*doc, b))
        })
        .collect()
}

/// Shell words of one logical line: quotes removed, a comment dropped,
/// operators (`&&`, `||`, `|`, `;`, `&`) as words of their own.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '&' | '|' | ';' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                let mut op = c.to_string();
                if chars.peek() == Some(&c) && c != ';' {
                    op.push(chars.next().unwrap());
                }
                words.push(op);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The simple commands of a shell block, each with its line number:
/// continuation lines joined, split at operators, leading `VAR=value`
/// assignments and redirections dropped.
fn commands(block: &str) -> Vec<(usize, Vec<String>)> {
    let mut logical = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (n, line) in block.lines().enumerate() {
        if pending.is_empty() {
            start = n;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                logical.push((start, std::mem::take(&mut pending)));
            }
        }
    }
    let mut commands = Vec::new();
    for (n, line) in logical {
        let mut command = Vec::new();
        for word in words(&line).into_iter().chain([";".to_string()]) {
            if ["&&", "||", "|", ";", "&"].contains(&word.as_str()) {
                if !command.is_empty() {
                    commands.push((n, std::mem::take(&mut command)));
                }
            } else if word.starts_with('>') || word.starts_with("2>") {
                // A redirection; its target is joined to it in these documents.
            } else if command.is_empty() && is_assignment(&word) {
                // VAR=value before the command.
            } else {
                command.push(word);
            }
        }
    }
    commands
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    })
}

/// The top-level entries of the repository that a path in the documents
/// may start with (build output under `target/` is not one).
fn repo_entries() -> BTreeSet<String> {
    std::fs::read_dir(ROOT)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "target" && name != ".git")
        .collect()
}

/// Whether `word` names a path in the repository (by its first component).
fn repo_path(word: &str, entries: &BTreeSet<String>) -> Option<String> {
    let word = word.trim_start_matches("./");
    let first = word.split('/').next()?;
    (entries.contains(first) && (word.contains('/') || word.contains('.')))
        .then(|| word.trim_end_matches(['.', ',', ')']).to_string())
}

/// Workspace packages: name and directory, from the root Cargo.toml.
fn packages() -> Vec<(String, PathBuf)> {
    let root = read("Cargo.toml");
    let members = root
        .lines()
        .find_map(|l| l.trim().strip_prefix("members = "))
        .expect("workspace members");
    words(&members.replace([',', '[', ']'], " "))
        .into_iter()
        .map(|dir| {
            let manifest = read(&format!("{dir}/Cargo.toml"));
            let name = manifest
                .lines()
                .find_map(|l| l.trim().strip_prefix("name = "))
                .expect("package name")
                .trim_matches('"')
                .to_string();
            (name, Path::new(ROOT).join(dir))
        })
        .collect()
}

fn switchboard_help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--help")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Why `command` (run from `cwd`) would not run, if it would not; `cd`
/// moves `cwd`.
fn check_command(command: &[String], cwd: &mut PathBuf, help: &str) -> Result<(), String> {
    let program = command[0].as_str();
    let args = &command[1..];
    let options = || args.iter().filter(|a| a.starts_with('-'));
    match program {
        "cd" => {
            let dir = cwd.join(&args[0]);
            if !dir.is_dir() {
                return Err(format!("no directory {}", dir.display()));
            }
            *cwd = dir;
            Ok(())
        }
        "cargo" => check_cargo(args, cwd, help),
        "switchboard" | "target/release/switchboard" | "~/.cargo/bin/switchboard" => {
            for option in options() {
                if !help
                    .split_whitespace()
                    .any(|w| w.trim_matches(['[', ']']) == option)
                {
                    return Err(format!("switchboard has no option {option} (see --help)"));
                }
            }
            Ok(())
        }
        "load" | "target/release/load" => check_load(args),
        _ if program.starts_with("tools/") || program.starts_with(".ci/") => {
            let script = cwd.join(program);
            let mode =
                std::fs::metadata(&script).map_err(|e| format!("{}: {e}", script.display()))?;
            if std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o111 == 0 {
                return Err(format!("{program} is not executable"));
            }
            let text = std::fs::read_to_string(&script).unwrap();
            for option in options() {
                let name = option.split('=').next().unwrap();
                if !text.contains(name) {
                    return Err(format!("{program} takes no option {name}"));
                }
            }
            Ok(())
        }
        _ if PLAIN_COMMANDS.contains(&program) => Ok(()),
        _ => Err(format!(
            "unknown command {program}: teach tests/readme.rs how to check it"
        )),
    }
}

fn check_cargo(args: &[String], cwd: &Path, help: &str) -> Result<(), String> {
    let mut args = args.iter().map(String::as_str).peekable();
    if args.peek().is_some_and(|a| a.starts_with('+')) {
        args.next();
    }
    let sub = args.next().ok_or("cargo without a subcommand")?;
    if sub == "fuzz" {
        let fuzz = Path::new(ROOT).join("fuzz");
        if cwd != fuzz {
            return Err("cargo fuzz outside fuzz/".into());
        }
        let action = args.next().ok_or("cargo fuzz without an action")?;
        if ["run", "cmin", "tmin"].contains(&action) {
            let target = args.next().ok_or("cargo fuzz without a target")?;
            if !fuzz.join(format!("fuzz_targets/{target}.rs")).is_file() {
                return Err(format!("no fuzz target {target}"));
            }
        }
        return Ok(());
    }
    if ![
        "build", "run", "test", "bench", "install", "clippy", "fmt", "check",
    ]
    .contains(&sub)
    {
        return Err(format!(
            "cargo {sub}: not a command these documents should need"
        ));
    }
    let all = packages();
    let mut chosen: Vec<&(String, PathBuf)> = Vec::new();
    let mut targets: Vec<(&str, &str)> = Vec::new();
    let mut rest: Vec<&str> = Vec::new();
    while let Some(arg) = args.next() {
        match arg {
            "--" => {
                rest = args.by_ref().collect();
                break;
            }
            "-p" | "--package" => {
                let name = args.next().ok_or("-p without a package")?;
                chosen.push(
                    all.iter()
                        .find(|(n, _)| n == name)
                        .ok_or_else(|| format!("no package {name} in the workspace"))?,
                );
            }
            "--test" | "--bench" | "--example" | "--bin" => {
                targets.push((arg, args.next().ok_or("a target option without a name")?))
            }
            "--path" => {
                let path = args.next().ok_or("--path without a path")?;
                if !cwd.join(path).join("Cargo.toml").is_file() {
                    return Err(format!("--path {path}: no Cargo.toml there"));
                }
            }
            "--release" | "--locked" | "--workspace" | "--all-targets" | "--all" => {}
            other => return Err(format!("cargo {sub}: unexpected argument {other}")),
        }
    }
    if chosen.is_empty() {
        // The default members: the root package and the core.
        chosen = all
            .iter()
            .filter(|(n, _)| n == "switchboard" || n == "switchboard-core")
            .collect();
    }
    for (kind, name) in &targets {
        let found = chosen.iter().any(|(package, dir)| match *kind {
            "--test" => {
                dir.join(format!("tests/{name}.rs")).is_file()
                    || dir.join(format!("tests/{name}/main.rs")).is_file()
            }
            "--bench" => dir.join(format!("benches/{name}.rs")).is_file(),
            "--example" => dir.join(format!("examples/{name}.rs")).is_file(),
            _ => {
                (package == name && dir.join("src/main.rs").is_file())
                    || dir.join(format!("src/bin/{name}.rs")).is_file()
            }
        });
        if !found {
            return Err(format!("cargo {sub}: no {kind} target {name}"));
        }
    }
    // `cargo run --release -- ARGS` runs switchboard itself.
    if sub == "run" && targets.iter().all(|(kind, _)| *kind != "--example") {
        let command: Vec<String> = std::iter::once("switchboard")
            .chain(rest)
            .map(String::from)
            .collect();
        return check_command(&command, &mut cwd.to_path_buf(), help);
    }
    Ok(())
}

/// The load tool's modes and options (clap derives `--foo-bar` from a field
/// `foo_bar` in tools/load/src/cli.rs).
fn check_load(args: &[String]) -> Result<(), String> {
    let cli = read("tools/load/src/cli.rs");
    let mode = args.first().ok_or("load without a mode")?;
    if !["stub", "run", "memory", "forward", "--help"].contains(&mode.as_str()) {
        return Err(format!("load has no mode {mode}"));
    }
    for option in args.iter().filter(|a| a.starts_with("--")) {
        let field = option.trim_start_matches("--").replace('-', "_");
        if option != "--help" && !cli.contains(&format!("pub {field}:")) {
            return Err(format!("load has no option {option}"));
        }
    }
    Ok(())
}

#[test]
fn every_command_in_the_shell_blocks_can_run_here() {
    let help = switchboard_help();
    let entries = repo_entries();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (doc, block) in blocks_of("sh") {
        let mut cwd = PathBuf::from(ROOT);
        for (n, command) in commands(&block.text) {
            let at = format!("{doc}:{}: {}", block.line + 1 + n, command.join(" "));
            if let Err(why) = check_command(&command, &mut cwd, &help) {
                problems.push(format!("{at}\n    {why}"));
            }
            for word in &command {
                let word = word.rsplit('=').next().unwrap();
                if let Some(path) = repo_path(word, &entries) {
                    if !cwd.join(&path).exists() && !Path::new(ROOT).join(&path).exists() {
                        problems.push(format!("{at}\n    no such path: {path}"));
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} commands found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_path_the_documents_name_exists() {
    let entries = repo_entries();
    let mut problems = Vec::new();
    for doc in DOCUMENTS {
        let (_, prose) = blocks(&read(doc));
        let base = Path::new(ROOT).join(doc).parent().unwrap().to_path_buf();
        // Links: [text](target), local ones relative to the document.
        for part in prose.split("](").skip(1) {
            let target = part.split(')').next().unwrap();
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let path = target.split('#').next().unwrap();
            if !path.is_empty() && !base.join(path).exists() {
                problems.push(format!("{doc}: link to a missing file: {target}"));
            }
        }
        // Inline code naming a repository path, relative to the root.
        for (i, span) in prose.split('`').enumerate() {
            if i % 2 == 1 {
                for word in span.split_whitespace() {
                    if let Some(path) = repo_path(word, &entries) {
                        if !Path::new(ROOT).join(&path).exists() {
                            problems.push(format!("{doc}: `{span}` names a missing path"));
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_refuses_what_does_not_exist() {
    let help = switchboard_help();
    let root = PathBuf::from(ROOT);
    let refused = |line: &str| {
        let (_, command) = commands(line).remove(0);
        check_command(&command, &mut root.clone(), &help).is_err()
    };
    assert!(refused("switchboard --frobnicate"));
    assert!(refused("cargo run --release -- --frobnicate"));
    assert!(refused("cargo test -p no-such-package"));
    assert!(refused("cargo test --test no_such_test"));
    assert!(refused(
        "cargo bench -p switchboard-core --bench no_such_bench"
    ));
    assert!(refused("tools/interop/no-such-script"));
    assert!(refused("tools/interop/lib.sh"), "not executable");
    assert!(refused("tools/interop/run --no-such-option"));
    assert!(refused("target/release/load run --no-such-option"));
    assert!(refused("frobnicate --now"));
    assert!(!refused("cargo test -p switchboard-core --test simulation"));
    assert!(!refused("RUST_LOG=debug switchboard --config x.toml"));
    let entries = repo_entries();
    assert_eq!(
        repo_path("docs/nothing.md", &entries).as_deref(),
        Some("docs/nothing.md")
    );
    assert_eq!(repo_path("target/release/switchboard", &entries), None);
}

#[test]
fn every_config_sample_passes_check_config() {
    let dir = std::env::temp_dir().join(format!("switchboard-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let samples = blocks_of("toml");
    assert!(samples.len() >= 3, "config samples: {}", samples.len());
    for (i, (doc, block)) in samples.iter().enumerate() {
        let path = dir.join(format!("sample{i}.toml"));
        std::fs::write(&path, &block.text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("--check-config")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            (Some(0), "config ok"),
            "{doc}:{}: {}",
            block.line,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn recipe_excerpts_are_the_recipes_text() {
    for (lang, recipe) in [
        ("nginx", "docs/deploy/nginx.conf"),
        ("haproxy", "docs/deploy/haproxy.cfg"),
    ] {
        let text = read(recipe);
        for (doc, block) in blocks_of(lang) {
            assert!(
                text.contains(&block.text),
                "{doc}:{}: this {lang} block is not a verbatim part of {recipe}",
                block.line
            );
        }
    }
    assert!(
        !blocks_of("nginx").is_empty(),
        "the README shows the nginx recipe"
    );
}

/// The README's log sample with every number and 32-digit hex id made
/// generic, to compare with a real run.
fn shape(line: &str) -> String {
    let mut out = String::new();
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes[i..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if boundary && hex == 32 {
            out.push('H');
            i += 32;
        } else if bytes[i].is_ascii_digit() {
            out.push('N');
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// switchboard's binary with `config`, its standard error collected line by
/// line; returns the child, the lines, and the address it listens on.
fn spawn(
    config: &str,
) -> (
    std::process::Child,
    Arc<Mutex<Vec<String>>>,
    std::net::SocketAddr,
) {
    let dir = std::env::temp_dir().join(format!("switchboard-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("log-{}.toml", config.len()));
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let found = wait_for(&lines, "listening on ");
    let addr = found
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {found}"));
    (child, lines, addr)
}

fn wait_for(lines: &Mutex<Vec<String>>, needle: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some(line) = lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no line with {needle:?} in {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(mut child: std::process::Child, lines: &Mutex<Vec<String>>) {
    let killed = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for(lines, "] stopped");
    child.wait().unwrap();
}

#[test]
fn the_readme_log_lines_are_the_ones_switchboard_writes() {
    let readme = read("README.md");
    let (_, logs) = readme.split_once("\n### Logs\n").expect("a Logs section");
    let (_, block) = logs.split_once("```text\n").unwrap();
    let (sample, _) = block.split_once("```").unwrap();

    let mut actual = Vec::new();
    // A WebSocket and a BOSH session through to a server, then SIGTERM.
    let stub = StubServer::start(StubOptions::plaintext("localhost"));
    let (child, lines, addr) = spawn(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[backend.routes]\nlocalhost = \"{}\"\n",
        stub.addr()
    ));
    let mut ws = WsClient::connect(addr, "/xmpp-websocket", &["xmpp"]).unwrap();
    ws.open("localhost").unwrap();
    ws.login_plain("alice", "pw", "localhost").unwrap();
    let (mut bosh, _) = BoshSession::create(addr, "/http-bind", "localhost", 1000, "").unwrap();
    bosh.login("bob", "localhost").unwrap();
    bosh.request("type='terminate'", "").unwrap();
    ws.close_stream().unwrap();
    wait_for(&lines, "end: client closed (websocket");
    stop(child, &lines);
    actual.extend(lines.lock().unwrap().iter().cloned());
    // A server that is not there.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gone.local_addr().unwrap().port();
    drop(gone);
    let (child, lines, addr) = spawn(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[backend.routes]\nlocalhost = \"127.0.0.1:{port}\"\n"
    ));
    let _ = BoshSession::create(addr, "/http-bind", "localhost", 2000, "");
    wait_for(&lines, "end: backend failed");
    stop(child, &lines);
    actual.extend(lines.lock().unwrap().iter().cloned());

    let shapes: BTreeSet<String> = actual.iter().map(|l| shape(l)).collect();
    let missing: Vec<&str> = sample
        .lines()
        .filter(|l| !shapes.contains(&shape(l)))
        .collect();
    assert!(
        missing.is_empty(),
        "README log lines switchboard does not write:\n{}\n\nwhat it wrote:\n{}",
        missing.join("\n"),
        actual.join("\n")
    );
}
