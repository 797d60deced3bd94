//! Security scanners and attack tools: their user agents, headers and probe paths.

use super::Hits;
use super::text::contains_any;
use crate::rule;

/// User-agent fragments of scanners and attack tools.
const SCANNERS: &[&str] = &[
    "sqlmap",
    "nikto",
    "nmap",
    "masscan",
    "zgrab",
    "nuclei",
    "acunetix",
    "netsparker",
    "w3af",
    "dirbuster",
    "gobuster",
    "wpscan",
    "havij",
    "openvas",
    "nessus",
    "arachni",
    "skipfish",
    "whatweb",
    "jaeles",
    "fuzz faster u fool",
    "ffuf",
    "feroxbuster",
    "wfuzz",
    "commix",
    "xsstrike",
    "dirb/",
    "(dirb)",
    "paros",
    "zaproxy",
    "owasp zap",
    "hydra",
    "medusa",
    "brutus",
    "bsqlbf",
    "pangolin",
    "grabber",
    "webinspect",
    "appscan",
    "morfeus",
    "zmeu",
    "jorgee",
    "libwhisker",
    "webshag",
    "fimap",
    "dotdotpwn",
    "metasploit",
    "struts-pwn",
    "interactsh",
    "burpcollaborator",
    "qualys",
    "detectify",
    "wapiti",
    "vega/",
    "sql power injector",
    "absinthe",
    "blackwidow",
    "nsauditor",
    "webvulnscan",
    "cgichk",
    "httprint",
    "netcraft ssl",
    "zgrab",
    "censysinspect",
    "projectdiscovery",
    "scaninfo@",
    "nmap scripting engine",
];

/// User-agent fragments of scripting languages and HTTP libraries: automation, not
/// necessarily hostile.
const SCRIPTING: &[&str] = &[
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx/",
    "go-http-client",
    "curl/",
    "wget/",
    "libwww-perl",
    "lwp::simple",
    "java/",
    "okhttp",
    "axios/",
    "node-fetch",
    "apache-httpclient",
    "ruby",
    "php/",
    "powershell/",
    "scrapy",
    "httpie",
    "winhttp",
    "restsharp",
];

/// Request headers only scanners send.
const SCANNER_HEADERS: &[&str] = &[
    "acunetix-product",
    "acunetix-scanning-agreement",
    "acunetix-user-agreement",
    "x-scanner",
    "x-wipp",
    "x-scan-memo",
    "x-requestmanager-memo",
    "x-request-memo",
    "x-ratproxy-loop",
];

/// Paths and file names scanners request to fingerprint a server.
const PROBE_PATHS: &[&str] = &[
    "nessus_is_probing_you",
    "acunetix-wvs-test",
    "acunetix_wvs_security_test",
    "nikto-test",
    "w00tw00t",
    "muieblackcat",
    "/sqlmap",
    "phpmyadmin/scripts/setup.php",
    "/hnap1",
    "/boaform/",
    "phpunit/src/util/php/eval-stdin.php",
    "/cgi-bin/luci",
    "/setup.cgi",
    "/shell?cd",
    "/wls-wsat/",
    "/_ignition/execute-solution",
    "/owa/auth/x.js",
    "/vpn/../vpns/",
    "/ecp/default.flt",
    "/remote/fgt_lang",
    "/cgi-bin/.%2e/",
    "/.well-known/security.txt.bak",
    "netsparker",
    "/invoker/jmxinvokerservlet",
    "/jmx-console/",
    "/solr/admin/info/system",
    "/actuator/gateway/routes",
    "/console/css/%252e%252e%252fconsole.portal",
];

/// 913100/913101: scanner and scripting user agents.
pub fn user_agent(user_agent: &str, hits: &mut Hits) {
    let lower = user_agent.to_lowercase();
    if contains_any(&lower, SCANNERS) {
        hits.push(rule::SCANNER_USER_AGENT);
    }
    if contains_any(&lower, SCRIPTING) {
        hits.push(rule::SCRIPTING_USER_AGENT);
    }
}

/// 913110: whether a header name is one scanners send.
pub fn is_scanner_header(name: &str) -> bool {
    SCANNER_HEADERS.contains(&name)
}

/// 913120: probe paths in the decoded path (lowercase).
pub fn probe_path(path: &str, hits: &mut Hits) {
    if contains_any(path, PROBE_PATHS) {
        hits.push(rule::SCANNER_PROBE_PATH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanners_are_told_from_browsers_and_libraries() {
        let mut hits = Hits::new();
        user_agent("sqlmap/1.7.2#stable (https://sqlmap.org)", &mut hits);
        assert_eq!(hits, vec![rule::SCANNER_USER_AGENT]);
        let mut hits = Hits::new();
        user_agent("python-requests/2.31.0", &mut hits);
        assert_eq!(hits, vec![rule::SCRIPTING_USER_AGENT]);
        let mut hits = Hits::new();
        user_agent(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
            &mut hits,
        );
        assert!(hits.is_empty());
    }
}
