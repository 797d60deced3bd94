//! Static sites: files from a directory, the index for directories, and the root index as a
//! fallback for client-side routes of single-page apps. Paths never leave the root.

use std::path::{Component, Path, PathBuf};

use paved_model::snapshot::StaticSite;

/// A file to send.
#[derive(Debug)]
pub struct StaticFile {
    /// Its media type.
    pub content_type: String,
    /// Its bytes.
    pub body: Vec<u8>,
}

/// The largest file served (static sites are app shells and assets, not downloads).
const MAX_FILE_BYTES: u64 = 32 << 20;

/// Finds the file for `relative` (already normalized by the router) under the site's root.
pub async fn resolve(site: &StaticSite, relative: &str, accepts_html: bool) -> Option<StaticFile> {
    let candidate = safe_join(&site.root, relative)?;
    let file = if tokio::fs::metadata(&candidate)
        .await
        .is_ok_and(|m| m.is_dir())
    {
        candidate.join(&site.index)
    } else {
        candidate
    };
    if let Some(found) = read(&file).await {
        return Some(found);
    }
    // A path without an extension asked for by a browser is a client-side route.
    let looks_like_route = Path::new(relative).extension().is_none();
    if site.spa_fallback && accepts_html && looks_like_route {
        return read(&site.root.join(&site.index)).await;
    }
    None
}

/// Joins only normal components: `..`, roots and prefixes are refused.
fn safe_join(root: &Path, relative: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for component in Path::new(relative.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(path)
}

async fn read(path: &Path) -> Option<StaticFile> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let body = tokio::fs::read(path).await.ok()?;
    let content_type = mime_guess::from_path(path)
        .first_or_octet_stream()
        .to_string();
    Some(StaticFile { content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_refuse_to_leave_the_root() {
        let root = Path::new("/srv/site");
        assert_eq!(
            safe_join(root, "/a/b.js"),
            Some(PathBuf::from("/srv/site/a/b.js"))
        );
        assert_eq!(safe_join(root, "/a/../../etc/passwd"), None);
        assert_eq!(safe_join(root, "/"), Some(PathBuf::from("/srv/site")));
    }

    #[tokio::test]
    async fn spa_routes_fall_back_to_the_index_for_browsers_only() {
        let dir = std::env::temp_dir().join(format!("paved-static-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("assets")).expect("dirs");
        std::fs::write(dir.join("index.html"), "<html>app</html>").expect("index");
        std::fs::write(dir.join("assets/app.js"), "console.log(1)").expect("js");
        let site = StaticSite {
            root: dir.clone(),
            index: "index.html".into(),
            spa_fallback: true,
        };
        let js = resolve(&site, "/assets/app.js", false).await.expect("file");
        assert!(
            js.content_type.contains("javascript"),
            "{}",
            js.content_type
        );
        let route = resolve(&site, "/settings/profile", true)
            .await
            .expect("fallback");
        assert_eq!(route.body, b"<html>app</html>");
        assert!(resolve(&site, "/settings/profile", false).await.is_none());
        assert!(resolve(&site, "/missing.png", true).await.is_none());
        std::fs::remove_dir_all(dir).ok();
    }
}
