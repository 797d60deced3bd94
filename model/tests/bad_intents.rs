//! A table of bad intents, each with the exact error it must produce: the file, line, column,
//! field, and what was expected.

use paved_model::Intent;

const HEAD: &str = "apiVersion: paved.dev/v1\nname: app\nowners: [alice@example.com]\ndomains: [app.example.com]\n";

/// (case, intent text, expected error)
fn cases() -> Vec<(&'static str, String, &'static str)> {
    let with = |rest: &str| format!("{HEAD}{rest}");
    vec![
        (
            "empty file",
            String::new(),
            "paved.yaml: expected a YAML mapping, found an empty document",
        ),
        (
            "not yaml",
            "apiVersion: paved.dev/v1\nname: app\n  owners: [a]\n".into(),
            "paved.yaml:3:9: mapping values are not allowed in this context",
        ),
        (
            "missing apiVersion",
            "name: app\nowners: [a]\ndomains: [app.example.com]\nupstream: 127.0.0.1:9000\n".into(),
            "paved.yaml:1:1: apiVersion: missing field `apiVersion`",
        ),
        (
            "unknown apiVersion",
            HEAD.replace("v1", "v9") + "upstream: 127.0.0.1:9000\n",
            "paved.yaml:1:13: apiVersion: unknown variant `paved.dev/v9`, expected `paved.dev/v1`",
        ),
        (
            "unknown top-level field",
            with("upstream: 127.0.0.1:9000\nowner: bob\n"),
            "paved.yaml:6:1: owner: unknown field `owner`, expected one of `apiVersion`, `name`, `owners`, `team`, `description`, `dataSensitivity`, `internetFacing`, `domains`, `upstream`, `upstreams`, `routes`, `populations`, `serviceClients`, `waf`, `rateLimits`, `headers`, `relatedApps`",
        ),
        (
            "duplicate key",
            with("upstreams:\n  api: 10.0.0.1:80\n  api: 10.0.0.2:80\n"),
            "paved.yaml:7:3: upstreams.api: duplicate key `api` (first at line 6)",
        ),
        (
            "two documents",
            with("upstream: 127.0.0.1:9000\n---\nname: other\n"),
            "paved.yaml: deserializing from YAML containing more than one document is not supported",
        ),
        (
            "unknown nested field",
            with(
                "upstream:\n  endpoints: [127.0.0.1:9000]\n  healthCheck: {path: /healthz, interval: 5}\n",
            ),
            "paved.yaml:7:33: upstream.healthCheck.interval: unknown field `interval`, expected one of `enabled`, `path`, `intervalMs`, `timeoutMs`, `healthyThreshold`, `unhealthyThreshold`",
        ),
        (
            "wrong type",
            with("upstream: 127.0.0.1:9000\ninternetFacing: sometimes\n"),
            "paved.yaml:6:17: internetFacing: invalid type: string \"sometimes\", expected a boolean",
        ),
        (
            "upstream of the wrong shape",
            with("upstream: 9000\n"),
            "paved.yaml:5:11: upstream: invalid type: integer `9000`, expected `host:port`, a list of `host:port`, or an upstream mapping",
        ),
        (
            "unknown enum value",
            with("upstream: 127.0.0.1:9000\ndataSensitivity: secret\n"),
            "paved.yaml:6:18: dataSensitivity: unknown variant `secret`, expected one of `public`, `internal`, `confidential`, `restricted`",
        ),
        (
            "bad app name",
            HEAD.replace("name: app", "name: My_App") + "upstream: 127.0.0.1:9000\n",
            "paved.yaml:2:7: name: expected lowercase letters, digits and `-`, starting with a letter (at most 63), found `My_App`",
        ),
        (
            "no owner",
            HEAD.replace("[alice@example.com]", "[]") + "upstream: 127.0.0.1:9000\n",
            "paved.yaml:3:9: owners: expected at least one owner (an e-mail address or user name)",
        ),
        (
            "bad domain",
            HEAD.replace(
                "[app.example.com]",
                "[app.example.com, \"https://x.example.com\"]",
            ) + "upstream: 127.0.0.1:9000\n",
            "paved.yaml:4:28: domains[1]: expected a domain such as `app.example.com` or `*.preview.example.com`, found `https://x.example.com`",
        ),
        (
            "no upstream",
            HEAD.to_string(),
            "paved.yaml:1:1: expected `upstream`, `upstreams` or `routes` with static assets",
        ),
        (
            "bad endpoint",
            with("upstream: localhost\n"),
            "paved.yaml:5:11: upstream.endpoints[0]: expected `host:port` such as `127.0.0.1:9000` or `app.internal:8080`, found `localhost`",
        ),
        (
            "zero timeout",
            with("upstream:\n  endpoints: [127.0.0.1:9000]\n  connectTimeoutMs: 0\n"),
            "paved.yaml:7:21: upstream.connectTimeoutMs: expected a value greater than 0, found 0",
        ),
        (
            "health check path",
            with("upstream:\n  endpoints: [127.0.0.1:9000]\n  healthCheck: {path: healthz}\n"),
            "paved.yaml:7:23: upstream.healthCheck.path: expected a path starting with `/` (no spaces, `?`, `#`, `\\` or dot segments), found `healthz`",
        ),
        (
            "several upstreams, no routes",
            with("upstreams:\n  a: 10.0.0.1:80\n  b: 10.0.0.2:80\n"),
            "paved.yaml:1:1: routes: expected routes saying which upstream serves which path (there are several upstreams)",
        ),
        (
            "route to an unknown upstream",
            with(
                "upstreams:\n  web: 10.0.0.1:80\n  api: 10.0.0.2:80\nroutes:\n  - path: /\n    upstream: web\n  - path: /api\n    upstream: apii\n",
            ),
            "paved.yaml:12:15: routes[1].upstream: expected the name of an upstream (one of `api`, `web`), found `apii`",
        ),
        (
            "route with no target",
            with("upstreams:\n  web: 10.0.0.1:80\n  api: 10.0.0.2:80\nroutes:\n  - path: /\n"),
            "paved.yaml:9:5: routes[0]: expected `upstream` (one of `api`, `web`) or `static`",
        ),
        (
            "route path without slash",
            with("upstream: 127.0.0.1:9000\nroutes:\n  - path: api\n"),
            "paved.yaml:7:11: routes[0].path: expected a path starting with `/` (no spaces, `?`, `#`, `\\` or dot segments), found `api`",
        ),
        (
            "duplicate route",
            with("upstream: 127.0.0.1:9000\nroutes:\n  - path: /api\n  - path: /api\n"),
            "paved.yaml:8:11: routes[1].path: path `/api` on `app.example.com` is already routed by routes[0]",
        ),
        (
            "both upstream and static",
            with(
                "upstream: 127.0.0.1:9000\nroutes:\n  - path: /\n    upstream: default\n    static: {root: ./dist}\n",
            ),
            "paved.yaml:9:13: routes[0].static: expected only one of `upstream` and `static`, found both",
        ),
        (
            "route on a foreign domain",
            with(
                "upstream: 127.0.0.1:9000\nroutes:\n  - path: /\n    domains: [other.example.com]\n",
            ),
            "paved.yaml:8:15: routes[0].domains[0]: expected one of the app's domains (`app.example.com`), found `other.example.com`",
        ),
        (
            "unknown population",
            with(
                "upstream: 127.0.0.1:9000\npopulations:\n  staff: {groups: [employees]}\nroutes:\n  - path: /\n    allow: [staf]\n",
            ),
            "paved.yaml:10:13: routes[0].allow[0]: expected the name of a population (one of `staff`), found `staf`",
        ),
        (
            "public route with allow",
            with(
                "upstream: 127.0.0.1:9000\npopulations:\n  staff: {groups: [employees]}\nroutes:\n  - path: /\n    public: true\n    allow: [staff]\n",
            ),
            "paved.yaml:11:12: routes[0].allow: a public route admits everyone: remove `allow` or `public`",
        ),
        (
            "population matching everyone",
            with("upstream: 127.0.0.1:9000\npopulations:\n  everyone: {}\n"),
            "paved.yaml:7:13: populations.everyone: expected `groups` or `claims` (a population that matches everyone admits any signed-in user; leave `allow` out instead)",
        ),
        (
            "service client on an unknown route",
            with(
                "upstream: 127.0.0.1:9000\nserviceClients:\n  - clientId: cron\n    routes: [/batch]\n",
            ),
            "paved.yaml:8:14: serviceClients[0].routes[0]: expected the path of one of the app's routes (`/`), found `/batch`",
        ),
        (
            "duplicate service client",
            with(
                "upstream: 127.0.0.1:9000\nserviceClients:\n  - clientId: cron\n  - clientId: cron\n",
            ),
            "paved.yaml:8:15: serviceClients[1].clientId: client `cron` is already listed at serviceClients[0]",
        ),
        (
            "paranoia out of range",
            with("upstream: 127.0.0.1:9000\nwaf: {paranoia: 5}\n"),
            "paved.yaml:6:17: waf.paranoia: expected a paranoia level from 1 to 4, found 5",
        ),
        (
            "unknown waf mode",
            with("upstream: 127.0.0.1:9000\nwaf: {mode: audit}\n"),
            "paved.yaml:6:13: waf.mode: unknown variant `audit`, expected one of `block`, `detect`, `off`",
        ),
        (
            "waf exclusion without rules",
            with(
                "upstream: 127.0.0.1:9000\nwaf:\n  exclusions:\n    - rules: []\n      paths: [/upload]\n",
            ),
            "paved.yaml:8:14: waf.exclusions[0].rules: expected at least one rule id or tag",
        ),
        (
            "rate limit of zero",
            with("upstream: 127.0.0.1:9000\nrateLimits:\n  - requests: 0\n    per: minute\n"),
            "paved.yaml:7:15: rateLimits[0].requests: expected a value greater than 0, found 0",
        ),
        (
            "rate limit window",
            with("upstream: 127.0.0.1:9000\nrateLimits:\n  - requests: 10\n    per: day\n"),
            "paved.yaml:8:10: rateLimits[0].per: unknown variant `day`, expected one of `second`, `minute`, `hour`",
        ),
        (
            "managed header in set",
            with("upstream: 127.0.0.1:9000\nheaders:\n  set:\n    Content-Security-Policy: none\n"),
            "paved.yaml:8:30: headers.set.Content-Security-Policy: `Content-Security-Policy` is managed by Paved: use its own field under `headers`",
        ),
        (
            "header value with a line break",
            with(
                "upstream: 127.0.0.1:9000\nheaders:\n  set:\n    X-Note: \"a\\r\\nSet-Cookie: x\"\n",
            ),
            "paved.yaml:8:13: headers.set.X-Note: expected a header value of printable ASCII without line breaks, found \"a\\r\\nSet-Cookie: x\"",
        ),
        (
            "disable an unmanaged header",
            with("upstream: 127.0.0.1:9000\nheaders:\n  disable: [Server]\n"),
            "paved.yaml:7:13: headers.disable[0]: expected a managed header (content-security-policy, strict-transport-security, x-frame-options, x-content-type-options, referrer-policy, permissions-policy, cross-origin-opener-policy, cross-origin-resource-policy), found `Server`",
        ),
        (
            "hsts preload too short",
            with("upstream: 127.0.0.1:9000\nheaders:\n  hsts: {maxAgeSecs: 600, preload: true}\n"),
            "paved.yaml:7:36: headers.hsts.preload: preload needs `includeSubdomains: true` and `maxAgeSecs` of at least 31536000",
        ),
        (
            "cors any origin with credentials",
            with(
                "upstream: 127.0.0.1:9000\nheaders:\n  cors:\n    allowedOrigins: [\"*\"]\n    allowCredentials: true\n",
            ),
            "paved.yaml:8:22: headers.cors.allowedOrigins[0]: `*` cannot be combined with `allowCredentials: true` (browsers refuse it): list the origins",
        ),
        (
            "cors origin without a scheme",
            with(
                "upstream: 127.0.0.1:9000\nheaders:\n  cors:\n    allowedOrigins: [shop.example.com]\n",
            ),
            "paved.yaml:8:22: headers.cors.allowedOrigins[0]: expected an origin such as `https://app.example.com` or `https://*.example.com`, found `shop.example.com`",
        ),
        (
            "cors without origins",
            with("upstream: 127.0.0.1:9000\nheaders:\n  cors: {allowCredentials: true}\n"),
            "paved.yaml:7:9: headers.cors.allowedOrigins: expected at least one origin, such as `https://app.example.com`",
        ),
        (
            "cors unknown field",
            with(
                "upstream: 127.0.0.1:9000\nheaders:\n  cors: {origins: [\"https://a.example\"]}\n",
            ),
            "paved.yaml:7:10: headers.cors.origins: unknown field `origins`, expected one of `allowedOrigins`, `allowedMethods`, `allowedHeaders`, `exposedHeaders`, `allowCredentials`, `maxAgeSecs`",
        ),
        (
            "related app is itself",
            with("upstream: 127.0.0.1:9000\nrelatedApps: [app]\n"),
            "paved.yaml:6:15: relatedApps[0]: expected another app, found this app's own name",
        ),
        (
            "several problems at once, in document order",
            HEAD.replace("name: app", "name: App") + "upstream: 127.0.0.1:0\nwaf: {paranoia: 0}\n",
            "paved.yaml:2:7: name: expected lowercase letters, digits and `-`, starting with a letter (at most 63), found `App`\n\
             paved.yaml:5:11: upstream.endpoints[0]: expected `host:port` such as `127.0.0.1:9000` or `app.internal:8080`, found `127.0.0.1:0`\n\
             paved.yaml:6:17: waf.paranoia: expected a paranoia level from 1 to 4, found 0",
        ),
    ]
}

#[test]
fn bad_intents_have_exact_errors() {
    let mut mismatches = Vec::new();
    for (case, text, expected) in cases() {
        let actual = match Intent::from_yaml_str(&text, "paved.yaml") {
            Ok(_) => "<accepted>".to_string(),
            Err(e) => e.to_string(),
        };
        if actual != expected {
            mismatches.push(format!(
                "{case}:\n  expected: {expected}\n  actual:   {actual}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn errors_are_structured() {
    let text = format!("{HEAD}upstream: 127.0.0.1:9000\nwaf: {{paranoia: 7}}\n");
    let err = Intent::from_yaml_str(&text, "apps/app/paved.yaml").err();
    let diagnostics = err
        .as_ref()
        .map(|e| e.diagnostics().to_vec())
        .unwrap_or_default();
    assert_eq!(diagnostics.len(), 1);
    let d = &diagnostics[0];
    assert_eq!(d.source, "apps/app/paved.yaml");
    assert_eq!(d.field, "waf.paranoia");
    assert_eq!(d.location.map(|l| (l.line, l.column)), Some((6, 17)));
    assert_eq!(d.message, "expected a paranoia level from 1 to 4, found 7");
}
