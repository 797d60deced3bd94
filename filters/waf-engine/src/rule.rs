//! The rule catalog: every rule the engine can report, with its CRS-style ID, attack family,
//! paranoia level and anomaly score.
//!
//! IDs follow the OWASP Core Rule Set's numbering by family (913 scanners, 920/921 protocol,
//! 930 LFI, 931 RFI, 932–934/944 code execution, 941 XSS, 942 SQLi) so that operators who
//! know the CRS recognise them; the detection logic behind them is this crate's own.

use std::fmt;

/// The attack family a rule belongs to; also usable as a tag in exclusions (`"sqli"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// SQL injection (942xxx).
    Sqli,
    /// Cross-site scripting (941xxx).
    Xss,
    /// Path traversal and local file inclusion (930xxx).
    Lfi,
    /// Remote file inclusion and server-side request forgery through URLs (931xxx).
    Rfi,
    /// OS command and code injection: shell, PHP, Node.js, Java, templates (932–934, 944).
    Rce,
    /// Protocol violations and request smuggling (920xxx, 921xxx).
    Protocol,
    /// Security scanners and attack tools (913xxx).
    Scanner,
}

impl Family {
    /// Every family, in report order.
    pub const ALL: [Family; 7] = [
        Family::Sqli,
        Family::Xss,
        Family::Lfi,
        Family::Rfi,
        Family::Rce,
        Family::Protocol,
        Family::Scanner,
    ];

    /// The family's tag, as written in exclusions and corpus file names.
    pub fn tag(self) -> &'static str {
        match self {
            Family::Sqli => "sqli",
            Family::Xss => "xss",
            Family::Lfi => "lfi",
            Family::Rfi => "rfi",
            Family::Rce => "rce",
            Family::Protocol => "protocol",
            Family::Scanner => "scanner",
        }
    }

    /// The family of a tag, if it names one.
    pub fn from_tag(tag: &str) -> Option<Family> {
        Family::ALL
            .into_iter()
            .find(|f| f.tag().eq_ignore_ascii_case(tag))
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// CRS severities as anomaly scores.
pub mod score {
    /// A clear attack.
    pub const CRITICAL: u32 = 5;
    /// Very likely an attack.
    pub const ERROR: u32 = 4;
    /// Suspicious.
    pub const WARNING: u32 = 3;
    /// Unusual.
    pub const NOTICE: u32 = 2;
}

/// One detection rule.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    /// CRS-style numeric ID, reported in decisions.
    pub id: u32,
    /// Attack family.
    pub family: Family,
    /// Lowest paranoia level (1–4) at which the rule runs.
    pub paranoia: u8,
    /// Anomaly score added when it matches.
    pub score: u32,
    /// What it detects.
    pub description: &'static str,
}

/// A rule ID; the constants below name every rule of the catalog.
pub type RuleId = u32;

macro_rules! catalog {
    ($( $name:ident = $id:literal, $family:ident, $pl:literal, $score:ident, $desc:literal; )*) => {
        $(
            #[doc = $desc]
            pub const $name: RuleId = $id;
        )*
        /// Every rule, by ascending ID.
        pub static RULES: &[Rule] = &[
            $( Rule { id: $id, family: Family::$family, paranoia: $pl, score: score::$score, description: $desc }, )*
        ];
    };
}

catalog! {
    SCANNER_USER_AGENT = 913100, Scanner, 1, CRITICAL, "User-Agent of a security scanner or attack tool";
    SCRIPTING_USER_AGENT = 913101, Scanner, 2, NOTICE, "User-Agent of a scripting or HTTP library";
    SCANNER_HEADER = 913110, Scanner, 1, CRITICAL, "Request header set by a security scanner";
    SCANNER_PROBE_PATH = 913120, Scanner, 1, CRITICAL, "Path or file name used by a security scanner";
    INVALID_REQUEST_LINE = 920100, Protocol, 1, CRITICAL, "Invalid HTTP method or request target";
    CONTENT_LENGTH_NOT_NUMERIC = 920160, Protocol, 1, CRITICAL, "Content-Length is not a decimal number";
    CONTENT_LENGTH_DUPLICATE = 920161, Protocol, 1, CRITICAL, "More than one Content-Length header";
    BODY_ON_GET_OR_HEAD = 920170, Protocol, 1, CRITICAL, "GET or HEAD request with a body";
    BODY_WITHOUT_LENGTH = 920180, Protocol, 3, NOTICE, "POST request with neither Content-Length nor Transfer-Encoding";
    INVALID_URL_ENCODING = 920220, Protocol, 1, CRITICAL, "Invalid URL encoding (a % not followed by two hex digits)";
    MULTIPLE_URL_ENCODING = 920230, Protocol, 2, WARNING, "Value still URL-encoded after decoding (double encoding)";
    IIS_UNICODE_ENCODING = 920260, Protocol, 1, CRITICAL, "IIS %u unicode encoding or overlong UTF-8 (evasion)";
    NULL_BYTE = 920270, Protocol, 1, CRITICAL, "Null byte in the request";
    NON_PRINTABLE = 920271, Protocol, 2, WARNING, "Non-printable control character in the request";
    NON_ASCII_RAW = 920272, Protocol, 3, NOTICE, "Unencoded byte outside printable ASCII in the path or query";
    STRICT_CHARSET = 920273, Protocol, 4, NOTICE, "Character outside a strict set in an argument";
    MISSING_HOST = 920280, Protocol, 1, WARNING, "Missing Host header";
    EMPTY_HOST = 920290, Protocol, 1, WARNING, "Empty Host header";
    MISSING_ACCEPT = 920300, Protocol, 2, NOTICE, "Missing Accept header";
    MISSING_USER_AGENT = 920320, Protocol, 2, NOTICE, "Missing User-Agent header";
    EMPTY_USER_AGENT = 920330, Protocol, 1, NOTICE, "Empty User-Agent header";
    BODY_WITHOUT_CONTENT_TYPE = 920340, Protocol, 1, NOTICE, "Request body without Content-Type";
    HOST_IS_IP = 920350, Protocol, 1, WARNING, "Host header is a numeric IP address";
    TOO_MANY_ARGUMENTS = 920380, Protocol, 1, CRITICAL, "Too many arguments";
    BODY_NOT_FULLY_INSPECTED = 920400, Protocol, 1, NOTICE, "Body larger than the inspection limit, inspected partially";
    HEADER_TOO_LONG = 920410, Protocol, 1, CRITICAL, "Overlong request header value";
    TOO_MANY_HEADERS = 920411, Protocol, 1, CRITICAL, "Too many request headers";
    RESTRICTED_EXTENSION = 920440, Protocol, 1, CRITICAL, "Request for a restricted file extension (backup, config, database)";
    RESTRICTED_HEADER = 920450, Protocol, 1, CRITICAL, "Restricted request header (Proxy, URL override)";
    SMUGGLING_IN_ARGUMENT = 921110, Protocol, 1, CRITICAL, "HTTP request smuggling in an argument";
    CL_AND_TE = 921111, Protocol, 1, CRITICAL, "Both Content-Length and Transfer-Encoding (request smuggling)";
    TE_NOT_CHUNKED = 921112, Protocol, 1, CRITICAL, "Transfer-Encoding other than a single 'chunked' (request smuggling)";
    TE_DUPLICATE = 921113, Protocol, 1, CRITICAL, "More than one Transfer-Encoding header";
    RESPONSE_SPLITTING = 921120, Protocol, 1, CRITICAL, "HTTP response splitting or header injection (CR/LF and a header)";
    HEADER_CRLF = 921140, Protocol, 1, CRITICAL, "CR or LF in a request header value";
    ARGUMENT_NAME_NEWLINE = 921150, Protocol, 1, CRITICAL, "Newline in an argument name";
    PARAMETER_POLLUTION = 921180, Protocol, 3, NOTICE, "Same argument given more than once";
    PATH_TRAVERSAL_ENCODED = 930100, Lfi, 1, CRITICAL, "Encoded path traversal";
    PATH_TRAVERSAL_REPEATED = 930105, Lfi, 1, CRITICAL, "Repeated path traversal (../..)";
    PATH_TRAVERSAL = 930110, Lfi, 1, ERROR, "Path traversal (../)";
    OS_FILE_ACCESS = 930120, Lfi, 1, CRITICAL, "Access to an operating system file";
    RESTRICTED_FILE_ACCESS = 930130, Lfi, 1, CRITICAL, "Access to a restricted file (VCS, secrets, configuration)";
    RFI_IP_URL = 931100, Rfi, 1, CRITICAL, "URL with an IP address host in an argument";
    RFI_PARAMETER = 931110, Rfi, 1, CRITICAL, "URL in a parameter commonly used for file inclusion";
    RFI_TRAILING_QUESTION_MARK = 931120, Rfi, 1, CRITICAL, "URL ending in ? (truncation for file inclusion)";
    RFI_STREAM_WRAPPER = 931125, Rfi, 1, CRITICAL, "Stream wrapper, dangerous URL scheme (php://, data://, gopher://) or UNC path";
    RFI_METADATA = 931126, Rfi, 1, CRITICAL, "Cloud metadata or loopback address in a URL (SSRF)";
    RFI_OFF_DOMAIN = 931130, Rfi, 2, NOTICE, "Absolute URL in an argument";
    UNIX_COMMAND_INJECTION = 932100, Rce, 1, CRITICAL, "Unix command injection (separator and command)";
    WINDOWS_COMMAND_INJECTION = 932110, Rce, 1, CRITICAL, "Windows command injection";
    POWERSHELL = 932120, Rce, 1, CRITICAL, "PowerShell command";
    SHELL_EXPRESSION = 932130, Rce, 1, CRITICAL, "Shell command substitution or expansion";
    SHELL_SUBSTITUTION_ANY = 932131, Rce, 2, WARNING, "Command substitution with backticks";
    DIRECT_UNIX_COMMAND = 932150, Rce, 1, CRITICAL, "Value is a Unix command with arguments";
    UNIX_SHELL_CODE = 932160, Rce, 1, CRITICAL, "Unix shell code (shell paths, reverse shells)";
    SHELLSHOCK = 932170, Rce, 1, CRITICAL, "Shellshock (CVE-2014-6271)";
    SHELL_EVASION = 932200, Rce, 1, CRITICAL, "Shell evasion ($IFS, brace expansion, globbed paths)";
    PHP_OPEN_TAG = 933100, Rce, 1, CRITICAL, "PHP open tag";
    PHP_UPLOAD = 933110, Rce, 1, CRITICAL, "Upload of a server-side script file";
    PHP_FUNCTION = 933150, Rce, 1, CRITICAL, "High-risk PHP function call";
    CODE_EVAL = 933160, Rce, 2, WARNING, "Code evaluation function call";
    NODE_INJECTION = 934100, Rce, 1, CRITICAL, "Node.js code injection";
    PROTOTYPE_POLLUTION = 934130, Rce, 1, CRITICAL, "JavaScript prototype pollution";
    TEMPLATE_INJECTION = 934140, Rce, 1, CRITICAL, "Server-side template injection";
    XSS_TOKENIZER = 941100, Xss, 1, CRITICAL, "XSS: HTML tag with script content or dangerous attributes";
    XSS_SCRIPT_TAG = 941110, Xss, 1, CRITICAL, "XSS: script tag";
    XSS_EVENT_HANDLER = 941120, Xss, 1, CRITICAL, "XSS: event handler attribute";
    XSS_SCRIPT_URI = 941130, Xss, 1, CRITICAL, "XSS: javascript:, vbscript: or data:text/html URI";
    XSS_CSS = 941140, Xss, 1, CRITICAL, "XSS: CSS expression or binding";
    XSS_DANGEROUS_TAG = 941160, Xss, 1, CRITICAL, "XSS: dangerous HTML element (iframe, object, svg, base, meta...)";
    XSS_DOM_SINK = 941180, Xss, 1, CRITICAL, "XSS: DOM sink or script property (document.cookie, innerHTML...)";
    XSS_JS_CALL = 941190, Xss, 2, WARNING, "XSS: dialog or eval function call";
    XSS_UTF7 = 941310, Xss, 1, CRITICAL, "XSS: UTF-7 encoded markup";
    XSS_HTML_TAG = 941320, Xss, 2, WARNING, "HTML tag outside the formatting allow-list";
    XSS_ANY_TAG = 941330, Xss, 3, WARNING, "Any HTML tag";
    XSS_ANGULAR = 941380, Xss, 1, CRITICAL, "XSS: client-side template injection (AngularJS)";
    SQLI_TOKENIZER = 942100, Sqli, 1, CRITICAL, "SQL injection: value breaks out of its SQL context";
    SQLI_DB_NAMES = 942140, Sqli, 1, CRITICAL, "SQL injection: system database or table names";
    SQLI_FUNCTIONS = 942150, Sqli, 2, WARNING, "SQL function call";
    SQLI_BLIND = 942160, Sqli, 1, CRITICAL, "SQL injection: time-based blind (sleep, benchmark, waitfor)";
    SQLI_MSSQL_EXEC = 942190, Sqli, 1, CRITICAL, "SQL injection: MSSQL code execution";
    SQLI_FILE_ACCESS = 942240, Sqli, 1, CRITICAL, "SQL injection: file access (load_file, into outfile)";
    SQLI_ERROR_BASED = 942250, Sqli, 1, CRITICAL, "SQL injection: error-based extraction";
    SQLI_UNION = 942270, Sqli, 1, CRITICAL, "SQL injection: UNION SELECT";
    SQLI_NOSQL = 942290, Sqli, 1, CRITICAL, "NoSQL (MongoDB) operator injection";
    SQLI_STATEMENT = 942350, Sqli, 2, WARNING, "SQL statement (drop, insert into, delete from)";
    SQLI_SPECIAL_CHARS_12 = 942430, Sqli, 2, WARNING, "More than 12 SQL special characters in a value";
    SQLI_SPECIAL_CHARS_6 = 942431, Sqli, 3, WARNING, "More than 6 SQL special characters in a value";
    SQLI_SPECIAL_CHARS_2 = 942432, Sqli, 4, WARNING, "More than 2 SQL special characters in a value";
    SQLI_METACHARS = 942460, Sqli, 3, WARNING, "Four or more consecutive non-word characters";
    SQLI_MYSQL_COMMENT = 942500, Sqli, 1, CRITICAL, "SQL injection: MySQL inline comment (/*!...*/)";
    JAVA_INJECTION = 944100, Rce, 1, CRITICAL, "Java code execution (Runtime, ProcessBuilder)";
    LOG4SHELL = 944150, Rce, 1, CRITICAL, "JNDI lookup (Log4Shell)";
}

/// The rule with this ID.
pub fn rule(id: RuleId) -> Option<&'static Rule> {
    RULES
        .binary_search_by_key(&id, |r| r.id)
        .ok()
        .and_then(|i| RULES.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_sorted_unique_and_well_formed() {
        for pair in RULES.windows(2) {
            assert!(
                pair[0].id < pair[1].id,
                "{} before {}",
                pair[0].id,
                pair[1].id
            );
        }
        for r in RULES {
            assert!((1..=4).contains(&r.paranoia), "{}", r.id);
            assert!(r.score > 0, "{}", r.id);
            assert_eq!(rule(r.id), Some(r));
        }
        assert!(rule(1).is_none());
    }

    #[test]
    fn every_family_has_paranoia_one_rules() {
        for family in Family::ALL {
            assert!(
                RULES.iter().any(|r| r.family == family && r.paranoia == 1),
                "{family}"
            );
            assert_eq!(Family::from_tag(family.tag()), Some(family));
        }
    }
}
