//! Where a storage keeps its cold files: a directory on the local filesystem, or a key
//! prefix in an object store (S3 through `object_store`). The cold tier only ever writes,
//! reads, lists and deletes whole immutable objects, which both backends do atomically:
//! the filesystem through a temp file, fsync, rename and a directory fsync; S3 because a
//! PUT replaces a whole object at once.
//!
//! The cold tier is synchronous. Object store calls are async, so they run on a small
//! runtime of their own and the calling thread waits for them; this never deadlocks,
//! whichever runtime (or none) the caller is on.

use crate::cold::ColdError;
use crate::cold::manifest::{sync_dir, write_atomically};
use crate::error::{KalamError, Result};
use crate::schema::StorageLocation;
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Checks that `name` — a namespace, table, partition or file name, possibly read from a
/// manifest or a backup — is one path segment, so that no location built from data can
/// leave its storage root.
pub(crate) fn check_segment(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(KalamError::Validation(format!("'{}' is not a valid file or directory name", name.escape_debug())))
    }
}

/// A directory of cold files.
#[derive(Clone)]
pub(crate) enum Location {
    Dir(PathBuf),
    /// Objects named `{prefix}/{name}` (`prefix` without a trailing `/`, possibly empty).
    Object {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

impl Default for Location {
    fn default() -> Self {
        Location::Dir(PathBuf::new())
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

/// Runs an object store call on the object I/O runtime and waits for it.
fn block_on<F>(f: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kalamdb-object-io")
            .enable_all()
            .build()
            .expect("the object I/O runtime starts")
    });
    futures::executor::block_on(runtime.spawn(f)).expect("object store calls do not panic")
}

impl Location {
    /// The root of a storage. A filesystem storage's directory is created if missing.
    pub(crate) fn open(location: &StorageLocation) -> Result<Location> {
        match location {
            StorageLocation::Filesystem { path } => {
                std::fs::create_dir_all(path)
                    .map_err(|e| KalamError::Validation(format!("cannot create {}: {e}", path.display())))?;
                Ok(Location::Dir(path.clone()))
            }
            StorageLocation::S3 { bucket, prefix, region, endpoint, access_key_id, secret_access_key, allow_http } => {
                // Bounded, so an unreachable endpoint fails a statement within seconds
                // instead of retrying for minutes.
                let retry = object_store::RetryConfig {
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(20),
                    ..Default::default()
                };
                let client = object_store::ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60));
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_retry(retry)
                    .with_client_options(client)
                    .with_bucket_name(bucket)
                    .with_region(region.as_deref().unwrap_or("us-east-1"))
                    .with_allow_http(*allow_http);
                if let Some(e) = endpoint {
                    builder = builder.with_endpoint(e);
                }
                if let Some(k) = access_key_id {
                    builder = builder.with_access_key_id(k);
                }
                if let Some(s) = secret_access_key {
                    builder = builder.with_secret_access_key(s);
                }
                let store =
                    builder.build().map_err(|e| KalamError::Validation(format!("invalid S3 storage settings: {e}")))?;
                let prefix = prefix.as_deref().unwrap_or("").trim_matches('/').to_string();
                Ok(Location::Object { store: Arc::new(store), prefix })
            }
        }
    }

    /// The sub-location `name`, which must be one path segment (see [`check_segment`]).
    pub(crate) fn join(&self, name: &str) -> Result<Location> {
        check_segment(name)?;
        Ok(match self {
            Location::Dir(d) => Location::Dir(d.join(name)),
            Location::Object { store, prefix } => Location::Object {
                store: store.clone(),
                prefix: if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") },
            },
        })
    }

    /// The directory, for a filesystem location.
    pub(crate) fn local_dir(&self) -> Option<&Path> {
        match self {
            Location::Dir(d) => Some(d),
            Location::Object { .. } => None,
        }
    }

    /// For messages: a path, or `{store}/{prefix}`.
    pub(crate) fn display(&self) -> String {
        match self {
            Location::Dir(d) => d.display().to_string(),
            Location::Object { store, prefix } => format!("{store}/{prefix}"),
        }
    }

    fn object(&self, name: &str) -> ObjectPath {
        match self {
            Location::Object { prefix, .. } if !prefix.is_empty() => ObjectPath::from(format!("{prefix}/{name}")),
            _ => ObjectPath::from(name),
        }
    }

    fn object_error(&self, op: String, source: object_store::Error) -> KalamError {
        ColdError::ObjectStore { op, location: self.display(), source }.into()
    }

    /// The whole content of `name`; `None` if there is no such file.
    pub(crate) fn read(&self, name: &str) -> Result<Option<Bytes>> {
        check_segment(name)?;
        match self {
            Location::Dir(d) => match std::fs::read(d.join(name)) {
                Ok(b) => Ok(Some(Bytes::from(b))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(KalamError::io("read", d.join(name))(e)),
            },
            Location::Object { store, .. } => {
                let (store, path) = (store.clone(), self.object(name));
                match block_on(async move { store.get(&path).await?.bytes().await }) {
                    Ok(b) => Ok(Some(b)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(self.object_error(format!("read {name}"), e)),
                }
            }
        }
    }

    /// Writes `name` atomically and durably, replacing any previous content.
    pub(crate) fn put(&self, name: &str, bytes: Bytes) -> Result<()> {
        check_segment(name)?;
        match self {
            Location::Dir(d) => {
                std::fs::create_dir_all(d).map_err(KalamError::io("create", d))?;
                write_atomically(d, name, &bytes)
            }
            Location::Object { store, .. } => {
                let (store, path) = (store.clone(), self.object(name));
                block_on(async move { store.put(&path, PutPayload::from(bytes)).await })
                    .map(|_| ())
                    .map_err(|e| self.object_error(format!("write {name}"), e))
            }
        }
    }

    /// Deletes `name` if it exists (the directory is fsynced).
    pub(crate) fn delete(&self, name: &str) -> Result<()> {
        check_segment(name)?;
        match self {
            Location::Dir(d) => match std::fs::remove_file(d.join(name)) {
                Ok(()) => sync_dir(d),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(KalamError::io("remove", d.join(name))(e)),
            },
            Location::Object { store, .. } => {
                let (store, path) = (store.clone(), self.object(name));
                match block_on(async move { store.delete(&path).await }) {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.object_error(format!("delete {name}"), e)),
                }
            }
        }
    }

    /// Names of the files (`dirs == false`) or sub-directories (`dirs == true`) directly in
    /// this location; empty if it does not exist.
    pub(crate) fn list(&self, dirs: bool) -> Result<Vec<String>> {
        match self {
            Location::Dir(d) => {
                let entries = match std::fs::read_dir(d) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
                    Err(e) => return Err(KalamError::io("list", d)(e)),
                };
                let mut out: Vec<String> = entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() == dirs))
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect();
                out.sort();
                Ok(out)
            }
            Location::Object { store, prefix } => {
                let store = store.clone();
                let at = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
                let listed = block_on(async move { store.list_with_delimiter(at.as_ref()).await })
                    .map_err(|e| self.object_error("list".into(), e))?;
                let paths: Vec<ObjectPath> = if dirs {
                    listed.common_prefixes
                } else {
                    listed.objects.into_iter().map(|o| o.location).collect()
                };
                let mut out: Vec<String> = paths.iter().filter_map(|p| p.filename().map(str::to_string)).collect();
                out.sort();
                Ok(out)
            }
        }
    }

    /// Removes this directory if it is empty (object stores have no directories).
    pub(crate) fn remove_dir_if_empty(&self) -> Result<()> {
        match self {
            Location::Dir(d) => match std::fs::remove_dir(d) {
                Ok(()) => Ok(()),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty) => {
                    Ok(())
                }
                Err(e) => Err(KalamError::io("remove", d)(e)),
            },
            Location::Object { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(root: Location) {
        let table = root.join("ns").unwrap().join("t").unwrap();
        let scope = table.join("7").unwrap();
        assert!(scope.list(false).unwrap().is_empty());
        assert_eq!(scope.read("a").unwrap(), None);
        scope.put("a", Bytes::from_static(b"one")).unwrap();
        scope.put("a", Bytes::from_static(b"two")).unwrap();
        scope.put("b", Bytes::from_static(b"x")).unwrap();
        table.join("shared").unwrap().put("c", Bytes::from_static(b"y")).unwrap();
        // A sibling whose name starts like the table's is not under it.
        root.join("ns").unwrap().join("t2").unwrap().put("d", Bytes::from_static(b"z")).unwrap();
        assert_eq!(scope.read("a").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(scope.list(false).unwrap(), ["a", "b"]);
        assert_eq!(table.list(true).unwrap(), ["7", "shared"]);
        scope.delete("a").unwrap();
        scope.delete("a").unwrap();
        assert_eq!(scope.list(false).unwrap(), ["b"]);
        // Dropping the table's files leaves what the cold tier did not write.
        scope.put("batch-1.parquet", Bytes::from_static(b"p")).unwrap();
        scope.put("manifest.json", Bytes::from_static(b"{}")).unwrap();
        table.join("shared").unwrap().put("batch-2.parquet.tmp", Bytes::from_static(b"p")).unwrap();
        table.join("shared").unwrap().delete("c").unwrap();
        crate::cold::remove_table_files(&table).unwrap();
        crate::cold::remove_table_files(&table).unwrap();
        assert_eq!(scope.list(false).unwrap(), ["b"]);
        assert_eq!(table.list(true).unwrap(), ["7"]);
        assert_eq!(root.join("ns").unwrap().join("t2").unwrap().list(false).unwrap(), ["d"]);
        // Names that are not one path segment are refused.
        for bad in ["..", ".", "", "a/b", "../x", "a\\b", "x\0y"] {
            assert!(root.join(bad).is_err(), "{bad:?}");
            assert!(scope.put(bad, Bytes::from_static(b"x")).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_directory_stores_whole_files() {
        let tmp = tempfile::tempdir().unwrap();
        exercise(Location::Dir(tmp.path().join("root")));
    }

    #[test]
    fn an_object_store_prefix_stores_whole_objects() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        exercise(Location::Object { store: store.clone(), prefix: "base/dir".into() });
        exercise(Location::Object { store, prefix: String::new() });
    }
}
