//! SQL injection.
//!
//! The core rule (942100) asks the question libinjection asks: read as SQL, does this value
//! escape the place it was meant for? A value is tokenized three ways — as it stands (a
//! number or identifier context), and as the rest of a `'`- or `"`-quoted string — and it is
//! an injection when, right after its first value (the closed string, or the number), it
//! goes on with SQL that changes the query: a boolean condition, `UNION SELECT`, a stacked
//! statement, a trailing comment, a clause such as `ORDER BY`. Prose does not: an apostrophe
//! in `O'Brien` closes the string but is followed by a plain word, which SQL cannot parse.
//! Keyword rules in the spirit of the CRS (system tables, sleep functions, file access...)
//! back it up.

pub mod tokenizer;

use tokenizer::{Kind, Token, tokenize};

use super::text::{calls, contains_any, contains_word, has};
use super::{Hits, Value};
use crate::normalize::strip_sql_comments;
use crate::request::Location;
use crate::rule;

/// Runs every SQL injection rule on one value.
pub fn detect(value: &Value<'_>, hits: &mut Hits) {
    let lower = &value.norm.lower;
    if has(lower, "/*!") {
        hits.push(rule::SQLI_MYSQL_COMMENT);
    }
    let sql = strip_sql_comments(lower);
    if breaks_out(&sql) {
        hits.push(rule::SQLI_TOKENIZER);
    }
    if has_union_select(&sql) {
        hits.push(rule::SQLI_UNION);
    }
    keyword_rules(&sql, hits);
    nosql(value, hits);
    special_characters(value, hits);
}

/// 942100: the value, read in any of the three contexts, breaks out into SQL.
pub fn breaks_out(sql: &str) -> bool {
    if sql.trim().is_empty() {
        return false;
    }
    let unquoted = tokenize(sql, None);
    if injection_after_first_value(&unquoted, None) {
        return true;
    }
    ['\'', '"'].into_iter().any(|quote| {
        sql.contains(quote) && injection_after_first_value(&tokenize(sql, Some(quote)), Some(quote))
    })
}

/// Whether the tokens, after their first value, continue as an injection. In a quoted
/// context the first value is the string the input closes; otherwise a number or variable
/// (optionally signed), or a bare word for boolean conditions only.
fn injection_after_first_value(tokens: &[Token], quoted: Option<char>) -> bool {
    if stacked_statement(tokens) {
        return true;
    }
    let mut i = 0;
    let first = if quoted.is_some() {
        match tokens.first().map(|t| t.kind) {
            Some(Kind::Str { closed: true }) => Kind::Str { closed: true },
            _ => return false,
        }
    } else {
        if tokens
            .first()
            .is_some_and(|t| t.kind == Kind::Op && matches!(t.text.as_str(), "-" | "+"))
        {
            i += 1;
        }
        match tokens.get(i).map(|t| t.kind) {
            Some(k @ (Kind::Num | Kind::Var | Kind::Word)) => k,
            // The value itself starts the condition (`or 1=1--`): a comparison of literals.
            Some(Kind::Logic) if i == 0 => return condition(tokens, 1, true),
            _ => return false,
        }
    };
    i += 1;
    while tokens.get(i).is_some_and(|t| t.kind == Kind::RParen) {
        i += 1;
    }
    let Some(continuation) = tokens.get(i) else {
        return false;
    };
    let value_first = first != Kind::Word;
    match continuation.kind {
        Kind::Union => value_first && union_select_at(tokens, i),
        Kind::Logic => condition(tokens, i + 1, first == Kind::Word),
        // `admin'--`; not `$('#menu')` or `href="#top"`, where the "comment" closes the
        // quote again, which a real comment would not need.
        Kind::Comment => quoted.is_some_and(|q| !continuation.text.contains(q)),
        Kind::Semicolon => {
            value_first && tokens.get(i + 1).is_some_and(|t| t.kind == Kind::Statement)
        }
        Kind::Keyword => value_first && clause(tokens, i),
        // `1'=1 or '1`: quoted contexts only; in prose `5 > 3 and 2 < 4` is arithmetic. A
        // subquery after an operator (`1 rlike (select ...)`) is SQL in any context.
        Kind::Op if quoted.is_some() => operator_then_injection(tokens, i),
        Kind::Op => value_first && subquery_at(tokens, i + 1),
        _ => false,
    }
}

/// A stacked statement that changes data or runs code: `; drop table`, `; delete from`,
/// `; exec xp_cmdshell`, `; waitfor delay`, `; select 1`. A plain `; select your plan`
/// is prose.
fn stacked_statement(tokens: &[Token]) -> bool {
    tokens.windows(3).any(|w| {
        let (semicolon, statement, next) = (&w[0], &w[1], &w[2]);
        if semicolon.kind != Kind::Semicolon || statement.kind != Kind::Statement {
            return false;
        }
        let next_text = next.text.as_str();
        match statement.text.as_str() {
            "drop" | "truncate" | "alter" | "create" => matches!(
                next_text,
                "table"
                    | "database"
                    | "user"
                    | "procedure"
                    | "function"
                    | "login"
                    | "schema"
                    | "index"
                    | "view"
            ),
            "delete" => next_text == "from",
            "insert" => next_text == "into",
            "update" => tokens.iter().any(|t| t.text == "set"),
            "exec" | "execute" => {
                next_text.starts_with("xp_")
                    || next_text.starts_with("sp_")
                    || next_text.starts_with("master")
                    || next.kind == Kind::LParen
            }
            "waitfor" => matches!(next_text, "delay" | "time"),
            "shutdown" => true,
            "select" => matches!(next.kind, Kind::Num | Kind::Func | Kind::Var) || next_text == "*",
            "declare" => next.kind == Kind::Var,
            _ => false,
        }
    }) || tokens.windows(2).any(|w| {
        w[0].kind == Kind::Semicolon && w[1].kind == Kind::Statement && w[1].text == "shutdown"
    })
}

/// A boolean condition starting at `i`: `1=1`, `'a'='a'`, `1`, `sleep(5)`, `(select ...)`.
/// `strict` (the value began with a bare word, as prose does) wants a comparison with a
/// literal: `admin or 1=1`, never `black or white`.
fn condition(tokens: &[Token], mut i: usize, strict: bool) -> bool {
    while tokens
        .get(i)
        .is_some_and(|t| matches!(t.kind, Kind::Not | Kind::LParen))
    {
        i += 1;
    }
    let Some(value) = tokens.get(i) else {
        return false;
    };
    match value.kind {
        Kind::Statement => return value.text == "select",
        Kind::Func => return true,
        Kind::Num | Kind::Var | Kind::Str { .. } => {}
        Kind::Word if !strict => {}
        _ => return false,
    }
    i += 1;
    while tokens.get(i).is_some_and(|t| t.kind == Kind::RParen) {
        i += 1;
    }
    let literal = matches!(value.kind, Kind::Num | Kind::Var | Kind::Str { .. });
    match tokens.get(i).map(|t| t.kind) {
        None | Some(Kind::Comment | Kind::Semicolon) => !strict && literal,
        Some(Kind::Op) => {
            tokens.get(i + 1).is_some_and(|t| {
                let operand_is_literal = matches!(
                    t.kind,
                    Kind::Num
                        | Kind::Var
                        | Kind::Str { .. }
                        | Kind::Func
                        | Kind::LParen
                        | Kind::Not
                );
                operand_is_literal || (!strict && t.kind == Kind::Word)
            }) && (!strict || literal)
        }
        Some(Kind::Logic) => condition(tokens, i + 1, strict),
        Some(Kind::Union) => union_select_at(tokens, i),
        _ => false,
    }
}

/// `UNION [ALL|DISTINCT] [(] SELECT` at `i`.
fn union_select_at(tokens: &[Token], i: usize) -> bool {
    tokens
        .iter()
        .skip(i + 1)
        .take(3)
        .find(|t| !(t.kind == Kind::LParen || matches!(t.text.as_str(), "all" | "distinct")))
        .is_some_and(|t| t.kind == Kind::Statement && t.text == "select")
}

/// A clause keyword at `i` that makes sense right after a value.
fn clause(tokens: &[Token], i: usize) -> bool {
    let next = tokens.get(i + 1);
    match tokens[i].text.as_str() {
        "order" | "group" => next.is_some_and(|t| t.text == "by"),
        "having" => condition(tokens, i + 1, false),
        "limit" | "offset" => next.is_some_and(|t| t.kind == Kind::Num),
        "procedure" => next.is_some_and(|t| matches!(t.kind, Kind::Word | Kind::Func)),
        "into" => next.is_some_and(|t| {
            matches!(t.text.as_str(), "outfile" | "dumpfile") || t.kind == Kind::Var
        }),
        _ => false,
    }
}

/// `(select` at `i`, after any number of parentheses.
fn subquery_at(tokens: &[Token], mut i: usize) -> bool {
    let open = i;
    while tokens.get(i).is_some_and(|t| t.kind == Kind::LParen) {
        i += 1;
    }
    i > open
        && tokens
            .get(i)
            .is_some_and(|t| t.kind == Kind::Statement && t.text == "select")
}

/// An operator at `i` followed by a subquery, or by a value and then a condition, comment
/// or union: `'+(select 1)+'`, `1'=1 or '1`.
fn operator_then_injection(tokens: &[Token], i: usize) -> bool {
    if subquery_at(tokens, i + 1) {
        return true;
    }
    let mut j = i + 1;
    while tokens.get(j).is_some_and(|t| t.kind == Kind::LParen) {
        j += 1;
    }
    if !tokens
        .get(j)
        .is_some_and(|t| matches!(t.kind, Kind::Num | Kind::Str { .. } | Kind::Var))
    {
        return false;
    }
    j += 1;
    while tokens.get(j).is_some_and(|t| t.kind == Kind::RParen) {
        j += 1;
    }
    match tokens.get(j).map(|t| t.kind) {
        Some(Kind::Logic) => condition(tokens, j + 1, false),
        Some(Kind::Union) => union_select_at(tokens, j),
        Some(Kind::Comment) => true,
        _ => false,
    }
}

/// 942270: `UNION SELECT` followed by a select list that looks like SQL (numbers, `null`,
/// `@@version`, functions, `*`, or a later `FROM`): not `a union select committee`.
fn has_union_select(sql: &str) -> bool {
    if !has(sql, "union") {
        return false;
    }
    let tokens = tokenize(sql, None);
    tokens.iter().enumerate().any(|(i, t)| {
        if t.kind != Kind::Union || !union_select_at(&tokens, i) {
            return false;
        }
        let Some(select_at) = tokens[i..]
            .iter()
            .position(|t| t.kind == Kind::Statement)
            .map(|p| p + i)
        else {
            return false;
        };
        let list = &tokens[select_at + 1..];
        let sql_like_first = list.first().is_some_and(|t| {
            matches!(
                t.kind,
                Kind::Num | Kind::Var | Kind::Func | Kind::Str { .. }
            ) || t.text == "*"
                || list.get(1).is_some_and(|n| n.kind == Kind::Comma)
        });
        sql_like_first || list.iter().any(|t| t.text == "from")
    })
}

const DB_NAMES: &[&str] = &[
    "information_schema",
    "mysql.user",
    "mysql.db",
    "sysobjects",
    "syscolumns",
    "sys.objects",
    "sys.tables",
    "sys.columns",
    "sys.databases",
    "master..sysdatabases",
    "master.dbo.",
    "msdb.",
    "pg_catalog",
    "pg_shadow",
    "pg_user",
    "pg_database",
    "pg_tables",
    "sqlite_master",
    "sqlite_schema",
    "msysaccessobjects",
    "msysobjects",
    "all_tables",
    "user_tables",
    "all_tab_columns",
    "user_tab_columns",
    "dba_users",
    "v$version",
    "@@version",
    "@@datadir",
    "@@hostname",
    "@@basedir",
];
const BLIND_CALLS: &[&str] = &[
    "sleep",
    "benchmark",
    "pg_sleep",
    "randomblob",
    "dbms_lock.sleep",
];
const MSSQL_EXEC: &[&str] = &[
    "xp_cmdshell",
    "sp_executesql",
    "sp_oacreate",
    "sp_oamethod",
    "sp_makewebtask",
    "sp_addextendedproc",
    "sp_configure",
    "openrowset",
    "opendatasource",
    "exec master",
    "execute immediate",
    "xp_dirtree",
    "xp_regread",
];
const FILE_ACCESS: &[&str] = &[
    "load_file",
    "into outfile",
    "into dumpfile",
    "load data infile",
    "load data local infile",
    "utl_http.request",
    "utl_inaddr",
    "pg_read_file",
    "pg_ls_dir",
    "lo_import",
    "lo_export",
    "from program",
    "dbms_pipe.receive_message",
];
const ERROR_BASED: &[&str] = &[
    "extractvalue",
    "updatexml",
    "name_const",
    "xmltype",
    "dbms_xmlgen",
    "ctxsys.drithsx",
    "geometrycollection",
    "multipoint",
    "polygon",
];
const SQL_FUNCTIONS: &[&str] = &[
    "concat",
    "concat_ws",
    "group_concat",
    "char",
    "chr",
    "ascii",
    "substring",
    "substr",
    "mid",
    "version",
    "database",
    "user",
    "current_user",
    "system_user",
    "schema",
    "hex",
    "unhex",
    "length",
    "cast",
    "convert",
    "ifnull",
    "iif",
    "md5",
    "sha1",
    "ord",
    "count",
    "rand",
];
const STATEMENT_PHRASES: &[&str] = &[
    "drop table",
    "drop database",
    "insert into",
    "delete from",
    "truncate table",
    "alter table",
    "create table",
    "create user",
    "grant all",
];

/// The CRS-like keyword rules.
fn keyword_rules(sql: &str, hits: &mut Hits) {
    // Cheap pre-checks keep short benign values from testing every pattern: every system
    // name has one of `_ . @ $`, every call a `(`.
    let calls_possible = sql.contains('(');
    if sql.contains(['_', '.', '@', '$']) && contains_any(sql, DB_NAMES) {
        hits.push(rule::SQLI_DB_NAMES);
    }
    let blind = (calls_possible && BLIND_CALLS.iter().any(|f| calls(sql, f)))
        || has(sql, "waitfor delay")
        || has(sql, "waitfor time");
    if blind {
        hits.push(rule::SQLI_BLIND);
    }
    if MSSQL_EXEC.iter().any(|p| has(sql, p)) {
        hits.push(rule::SQLI_MSSQL_EXEC);
    }
    if FILE_ACCESS.iter().any(|p| {
        if p.contains(' ') || p.contains('.') {
            has(sql, p)
        } else {
            calls(sql, p)
        }
    }) {
        hits.push(rule::SQLI_FILE_ACCESS);
    }
    let error_based = (calls_possible && ERROR_BASED.iter().any(|f| calls(sql, f)))
        || sql.contains("floor(rand(")
        || sql.contains("exp(~")
        || (sql.contains("convert(int,") && has(sql, "select"));
    if error_based {
        hits.push(rule::SQLI_ERROR_BASED);
    }
    if calls_possible && SQL_FUNCTIONS.iter().any(|f| calls(sql, f)) {
        hits.push(rule::SQLI_FUNCTIONS);
    }
    let statement = STATEMENT_PHRASES.iter().any(|p| has(sql, p))
        || (contains_word(sql, "update") && contains_word(sql, "set") && sql.contains('='));
    if statement {
        hits.push(rule::SQLI_STATEMENT);
    }
}

/// MongoDB query operators that let a client change a query: in bracket parameter names
/// (`user[$ne]=x`) and as JSON keys (`{"$ne": null}`).
const MONGO_OPERATORS: &[&str] = &[
    "$ne",
    "$eq",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$regex",
    "$where",
    "$exists",
    "$or",
    "$and",
    "$nor",
    "$not",
    "$expr",
    "$function",
    "$accumulator",
    "$type",
    "$mod",
    "$all",
    "$size",
    "$elemmatch",
];

/// 942290: NoSQL operator injection.
fn nosql(value: &Value<'_>, hits: &mut Hits) {
    let lower = &value.norm.lower;
    let found = match value.location {
        Location::ArgName if lower.contains('$') => MONGO_OPERATORS
            .iter()
            .any(|op| lower.contains(&format!("[{op}]")) || lower.as_str() == *op),
        Location::Arg | Location::Body | Location::Cookie if lower.contains(['$', '.']) => {
            has(lower, "$where")
                || (has(lower, "{\"$")
                    && MONGO_OPERATORS
                        .iter()
                        .any(|op| lower.contains(&format!("{{\"{op}\""))))
                || (has(lower, "this.")
                    && (has(lower, "&&") || has(lower, "||"))
                    && lower.contains('\''))
        }
        _ => false,
    };
    if found {
        hits.push(rule::SQLI_NOSQL);
    }
}

/// SQL special characters, counted like the CRS's restricted character anomaly rules.
const SPECIAL: &[char] = &[
    '~', '!', '@', '#', '$', '%', '^', '&', '*', '(', ')', '-', '+', '=', '{', '}', '[', ']', '|',
    ':', ';', '"', '\'', '`', '<', '>', '´', '’', '‘',
];

/// 942430/942431/942432 (special character counts) and 942460 (runs of non-word
/// characters), for argument values only.
fn special_characters(value: &Value<'_>, hits: &mut Hits) {
    if !matches!(value.location, Location::Arg | Location::Cookie) {
        return;
    }
    let text = &value.norm.decoded;
    let count = text.chars().filter(|c| SPECIAL.contains(c)).count();
    if count > 12 {
        hits.push(rule::SQLI_SPECIAL_CHARS_12);
    }
    if count > 6 {
        hits.push(rule::SQLI_SPECIAL_CHARS_6);
    }
    if count > 2 {
        hits.push(rule::SQLI_SPECIAL_CHARS_2);
    }
    let mut run = 0;
    let long_run = text.chars().any(|c| {
        run = if c.is_alphanumeric() || c.is_whitespace() || c == '_' {
            0
        } else {
            run + 1
        };
        run >= 4
    });
    if long_run {
        hits.push(rule::SQLI_METACHARS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn injects(s: &str) -> bool {
        breaks_out(&strip_sql_comments(&s.to_lowercase()))
    }

    #[test]
    fn classic_injections_break_out() {
        for attack in [
            "1' or '1'='1",
            "' or 1=1--",
            "admin'--",
            "admin')#",
            "\" or \"\"=\"",
            "') or ('a'='a",
            "1 or 1=1",
            "-1 union select 1,2,3",
            "1' union all select null,version()--",
            "1; drop table users",
            "'; exec master..xp_cmdshell 'dir'--",
            "1' order by 3--+",
            "1' and sleep(5)#",
            "'||(select 1)||'",
            "1 and (select 1 from dual)",
            "admin or 1=1",
            "1/**/or/**/1=1",
            "x' and email is null; --",
            "1' having 1=1--",
            "' or ''='",
        ] {
            assert!(injects(attack), "{attack}");
        }
    }

    #[test]
    fn prose_with_sql_words_and_apostrophes_does_not() {
        for benign in [
            "O'Brien",
            "select the best union of flavours",
            "Don't select or update anything",
            "black or white",
            "\"machine learning\" and \"python\"",
            "the kids' or parents' consent",
            "rock 'n' roll",
            "cats and dogs = love",
            "if (a || b == c) return;",
            "2024-01-01",
            "+1 (555) 123-4567",
            "3 or more",
            "it's 5 o'clock",
            "trade union select committee",
        ] {
            assert!(!injects(benign), "{benign}");
        }
    }

    #[test]
    fn union_select_needs_a_sql_select_list() {
        assert!(has_union_select("-1 union select 1,2"));
        assert!(has_union_select("x union all select password from users"));
        assert!(!has_union_select("the union select committee met"));
    }
}
