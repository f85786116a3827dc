//! At start, before serving: local storage keeps only what committed
//! records name. A record write stores its files before its COMMIT, and a
//! delete or replace removes the old ones after it; a crash or power cut in
//! between leaves files no record names (and a write's `.<name>.tmp`).
//! They are removed here — never a file a record names, nor its thumbs.
//! Directories of collections the schema doesn't know are left alone.

use crate::schema::{Collection, FieldKind};
use crate::store::Store;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

/// What a sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub records: usize,
    pub files: usize,
}

/// The names a record's file fields hold.
fn names(c: &Collection, row: &serde_json::Map<String, Value>) -> HashSet<String> {
    let mut out = HashSet::new();
    for f in c.fields.iter() {
        if !matches!(f.kind, FieldKind::File(_)) {
            continue;
        }
        match row.get(&f.name) {
            Some(Value::String(s)) if !s.is_empty() => {
                out.insert(s.clone());
            }
            Some(Value::Array(a)) => {
                out.extend(a.iter().filter_map(Value::as_str).map(String::from));
            }
            _ => {}
        }
    }
    out
}

/// Removes from `<data>/storage` the record directories of records that
/// don't exist and the files (and thumbs) their record doesn't name.
pub fn sweep(store: &Store, data_dir: &Path) -> anyhow::Result<Swept> {
    let mut swept = Swept::default();
    let root = data_dir.join("storage");
    let Ok(colls) = std::fs::read_dir(&root) else {
        return Ok(swept);
    };
    let schema = store.schema();
    for cdir in colls {
        let cdir = cdir?;
        let cid = cdir.file_name().to_string_lossy().to_string();
        let Some(coll) = schema.by_id(&cid).cloned() else {
            continue;
        };
        for rdir in std::fs::read_dir(cdir.path())? {
            let rdir = rdir?;
            if !rdir.file_type()?.is_dir() {
                continue;
            }
            let rid = rdir.file_name().to_string_lossy().to_string();
            let row = {
                let (coll, rid) = (coll.clone(), rid.clone());
                store
                    .read_now(move |c| crate::store::records::fetch_by_id(c, &coll, &rid))
                    .map_err(|e| anyhow::anyhow!("{e}"))?
            };
            let Some(row) = row else {
                tracing::info!(record = %format!("{cid}/{rid}"), "removing the files of a record that was never committed or is deleted");
                std::fs::remove_dir_all(rdir.path())?;
                swept.records += 1;
                continue;
            };
            let keep = names(&coll, &row);
            for f in std::fs::read_dir(rdir.path())? {
                let f = f?;
                let name = f.file_name().to_string_lossy().to_string();
                let owner = name.strip_prefix("thumbs_").unwrap_or(&name);
                if keep.contains(owner) {
                    continue;
                }
                tracing::info!(file = %format!("{cid}/{rid}/{name}"), "removing a file no record names");
                if f.file_type()?.is_dir() {
                    std::fs::remove_dir_all(f.path())?;
                } else {
                    std::fs::remove_file(f.path())?;
                }
                swept.files += 1;
            }
        }
    }
    Ok(swept)
}
