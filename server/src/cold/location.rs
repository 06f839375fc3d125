//! Where a storage keeps its cold files: a directory on the local filesystem, or a key
//! prefix in an object store (S3 through `object_store`). The cold tier only ever writes,
//! reads, lists and deletes whole immutable objects, which both backends do atomically:
//! the filesystem through a temp file, fsync, rename and a directory fsync; S3 because a
//! PUT replaces a whole object at once.
//!
//! Every operation is async. Object-store calls are awaited where they are made;
//! filesystem calls, which block, run on tokio's blocking pool, so that no async worker
//! waits for a disk. Parquet files are read through [`Location::reader`], which fetches
//! only the byte ranges a reader asks for (the footer, then the column chunks it decodes).

use crate::cold::ColdError;
use crate::cold::manifest::{sync_dir, write_atomically};
use crate::error::{KalamError, Result};
use crate::schema::StorageLocation;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, MetadataSuffixFetch};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

/// Runs blocking filesystem work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| KalamError::internal(format!("filesystem task failed: {e}")))?
}

/// A Parquet file being read: byte ranges fetched on demand.
pub(crate) type FileReader = Box<dyn AsyncFileReader>;

impl Location {
    /// The root of a storage. A filesystem storage's directory is created if missing.
    pub(crate) fn open(location: &StorageLocation) -> Result<Location> {
        match location {
            StorageLocation::Filesystem { path, .. } => {
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
    pub(crate) async fn read(&self, name: &str) -> Result<Option<Bytes>> {
        check_segment(name)?;
        match self {
            Location::Dir(d) => {
                let path = d.join(name);
                blocking(move || match std::fs::read(&path) {
                    Ok(b) => Ok(Some(Bytes::from(b))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(KalamError::io("read", &path)(e)),
                })
                .await
            }
            Location::Object { store, .. } => {
                let path = self.object(name);
                match async { store.get(&path).await?.bytes().await }.await {
                    Ok(b) => Ok(Some(b)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(self.object_error(format!("read {name}"), e)),
                }
            }
        }
    }

    /// Starts opening the Parquet file `name` now: a local file is opened (and read, if
    /// small) on the blocking pool at once, so that a reader going through several files
    /// opens the next while it decodes the current one. (Waiting for each trip to the pool
    /// in turn made a scan of 20 small files 30-40% slower than reading them in place.)
    pub(crate) fn open_ahead(&self, name: &str) -> Result<Opening> {
        self.start_opening(name, READ_WHOLE_BYTES)
    }

    /// Opens the Parquet file `name` to read a few of its pages (a point read): a local file
    /// is never read whole, each request of the decoder reads just its ranges.
    pub(crate) fn open_ranged(&self, name: &str) -> Result<Opening> {
        self.start_opening(name, 0)
    }

    /// Starts opening `name`; a local file of at most `whole` bytes is read into memory.
    fn start_opening(&self, name: &str, whole: u64) -> Result<Opening> {
        check_segment(name)?;
        let pending = match self {
            Location::Dir(d) => {
                let path = d.join(name);
                PendingFile::Local(tokio::task::spawn_blocking(move || LocalFile::open(&path, whole)))
            }
            Location::Object { store, .. } => {
                PendingFile::Object(ObjectFile { store: store.clone(), path: self.object(name) })
            }
        };
        Ok(Opening { name: name.to_string(), location: self.display(), pending })
    }

    /// Writes `name` atomically and durably, replacing any previous content.
    pub(crate) async fn put(&self, name: &str, bytes: Bytes) -> Result<()> {
        check_segment(name)?;
        match self {
            Location::Dir(d) => {
                let (d, name) = (d.clone(), name.to_string());
                blocking(move || {
                    std::fs::create_dir_all(&d).map_err(KalamError::io("create", &d))?;
                    write_atomically(&d, &name, &bytes)
                })
                .await
            }
            Location::Object { store, .. } => store
                .put(&self.object(name), PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|e| self.object_error(format!("write {name}"), e)),
        }
    }

    /// Deletes `name` if it exists (the directory is fsynced).
    pub(crate) async fn delete(&self, name: &str) -> Result<()> {
        check_segment(name)?;
        match self {
            Location::Dir(d) => {
                let (d, path) = (d.clone(), d.join(name));
                blocking(move || match std::fs::remove_file(&path) {
                    Ok(()) => sync_dir(&d),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(KalamError::io("remove", &path)(e)),
                })
                .await
            }
            Location::Object { store, .. } => match store.delete(&self.object(name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.object_error(format!("delete {name}"), e)),
            },
        }
    }

    /// Names of the files (`dirs == false`) or sub-directories (`dirs == true`) directly in
    /// this location; empty if it does not exist.
    pub(crate) async fn list(&self, dirs: bool) -> Result<Vec<String>> {
        match self {
            Location::Dir(d) => {
                let d = d.clone();
                blocking(move || {
                    let entries = match std::fs::read_dir(&d) {
                        Ok(e) => e,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
                        Err(e) => return Err(KalamError::io("list", &d)(e)),
                    };
                    let mut out: Vec<String> = entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() == dirs))
                        .map(|e| e.file_name().to_string_lossy().to_string())
                        .collect();
                    out.sort();
                    Ok(out)
                })
                .await
            }
            Location::Object { store, prefix } => {
                let at = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
                let listed =
                    store.list_with_delimiter(at.as_ref()).await.map_err(|e| self.object_error("list".into(), e))?;
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
    pub(crate) async fn remove_dir_if_empty(&self) -> Result<()> {
        match self {
            Location::Dir(d) => {
                let d = d.clone();
                blocking(move || match std::fs::remove_dir(&d) {
                    Ok(()) => Ok(()),
                    Err(e)
                        if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(KalamError::io("remove", &d)(e)),
                })
                .await
            }
            Location::Object { .. } => Ok(()),
        }
    }
}

/// A file being opened (see [`Location::open_ahead`]).
pub(crate) struct Opening {
    name: String,
    location: String,
    pending: PendingFile,
}

enum PendingFile {
    Local(tokio::task::JoinHandle<std::io::Result<LocalFile>>),
    Object(ObjectFile),
}

impl Opening {
    /// The file's name in its location.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the file is open.
    pub(crate) async fn reader(self) -> Result<FileReader> {
        match self.pending {
            PendingFile::Local(opening) => match opening.await {
                Ok(Ok(file)) => Ok(Box::new(file)),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(ColdError::Corrupt(format!("cold file {} is missing in {}", self.name, self.location)).into())
                }
                Ok(Err(e)) => Err(KalamError::io("open", PathBuf::from(&self.location).join(&self.name))(e)),
                Err(e) => Err(KalamError::internal(format!("filesystem task failed: {e}"))),
            },
            PendingFile::Object(file) => Ok(Box::new(file)),
        }
    }
}

/// Local files up to this size are read whole by the trip to the blocking pool that opens
/// them. A flush writes one file per partition, and most are this small: one trip per file
/// instead of three (open, footer, row group) keeps a scan of many small files as fast as
/// reading them synchronously on the scanning thread was.
const READ_WHOLE_BYTES: u64 = 8 << 20;

/// A local Parquet file: in memory if small, else read by ranges, each request of the
/// decoder (the footer, a row group's column chunks) one trip to the blocking pool.
enum LocalFile {
    Whole(Bytes),
    Ranged(Arc<std::fs::File>),
}

impl LocalFile {
    /// Opens `path`, reading it whole if it has at most `whole` bytes (a blocking call).
    fn open(path: &Path, whole: u64) -> std::io::Result<LocalFile> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        if whole == 0 {
            return Ok(LocalFile::Ranged(Arc::new(file)));
        }
        let len = file.metadata()?.len();
        if len > whole {
            return Ok(LocalFile::Ranged(Arc::new(file)));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes)?;
        Ok(LocalFile::Whole(Bytes::from(bytes)))
    }

    /// Runs `read` on the bytes in memory, or on the file on the blocking pool.
    fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn ChunkSource) -> parquet::errors::Result<T> + Send + 'static,
    ) -> BoxFuture<'static, parquet::errors::Result<T>> {
        match self {
            LocalFile::Whole(bytes) => futures::future::ready(read(bytes)).boxed(),
            LocalFile::Ranged(file) => {
                let file = file.clone();
                async move {
                    tokio::task::spawn_blocking(move || read(&*file))
                        .await
                        .map_err(|e| ParquetError::External(Box::new(e)))?
                }
                .boxed()
            }
        }
    }
}

/// Where a local file's bytes come from: memory or the file.
trait ChunkSource: Send + Sync {
    fn range(&self, range: Range<u64>) -> parquet::errors::Result<Bytes>;
    fn metadata(&self, options: Option<&ArrowReaderOptions>) -> parquet::errors::Result<ParquetMetaData>;
}

impl ChunkSource for Bytes {
    fn range(&self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        if range.end > self.len() as u64 || range.start > range.end {
            return Err(ParquetError::EOF(format!("range {range:?} is outside the file of {} bytes", self.len())));
        }
        Ok(self.slice(range.start as usize..range.end as usize))
    }

    fn metadata(&self, options: Option<&ArrowReaderOptions>) -> parquet::errors::Result<ParquetMetaData> {
        ParquetMetaDataReader::new().with_arrow_reader_options(options).parse_and_finish(self)
    }
}

impl ChunkSource for std::fs::File {
    fn range(&self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0; (range.end - range.start) as usize];
        self.read_exact_at(&mut buf, range.start).map_err(|e| ParquetError::External(Box::new(e)))?;
        Ok(Bytes::from(buf))
    }

    fn metadata(&self, options: Option<&ArrowReaderOptions>) -> parquet::errors::Result<ParquetMetaData> {
        ParquetMetaDataReader::new().with_arrow_reader_options(options).parse_and_finish(self)
    }
}

impl AsyncFileReader for LocalFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.read(move |f| f.range(range))
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.read(move |f| ranges.into_iter().map(|r| f.range(r)).collect())
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let options = options.cloned();
        self.read(move |f| Ok(Arc::new(f.metadata(options.as_ref())?)))
    }
}

/// A Parquet file in an object store, read by ranges: the footer through one suffix
/// request (no size needed), then the column chunks the decoder asks for.
struct ObjectFile {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
}

fn parquet_error(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.store.get_range(&self.path, range).await.map_err(parquet_error) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(parquet_error) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let reader = ParquetMetaDataReader::new().with_arrow_reader_options(options);
            Ok(Arc::new(reader.load_via_suffix_and_finish(self).await?))
        }
        .boxed()
    }
}

impl MetadataSuffixFetch for &mut ObjectFile {
    fn fetch_suffix(&mut self, suffix: usize) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Suffix(suffix as u64)),
            ..Default::default()
        };
        async move {
            self.store.get_opts(&self.path, options).await.map_err(parquet_error)?.bytes().await.map_err(parquet_error)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exercise(root: Location) {
        let table = root.join("ns").unwrap().join("t").unwrap();
        let scope = table.join("7").unwrap();
        assert!(scope.list(false).await.unwrap().is_empty());
        assert_eq!(scope.read("a").await.unwrap(), None);
        scope.put("a", Bytes::from_static(b"one")).await.unwrap();
        scope.put("a", Bytes::from_static(b"two")).await.unwrap();
        scope.put("b", Bytes::from_static(b"x")).await.unwrap();
        table.join("shared").unwrap().put("c", Bytes::from_static(b"y")).await.unwrap();
        // A sibling whose name starts like the table's is not under it.
        root.join("ns").unwrap().join("t2").unwrap().put("d", Bytes::from_static(b"z")).await.unwrap();
        assert_eq!(scope.read("a").await.unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(scope.list(false).await.unwrap(), ["a", "b"]);
        assert_eq!(table.list(true).await.unwrap(), ["7", "shared"]);
        scope.delete("a").await.unwrap();
        scope.delete("a").await.unwrap();
        assert_eq!(scope.list(false).await.unwrap(), ["b"]);
        // Dropping the table's files leaves what the cold tier did not write.
        scope.put("batch-1.parquet", Bytes::from_static(b"p")).await.unwrap();
        scope.put("manifest.json", Bytes::from_static(b"{}")).await.unwrap();
        table.join("shared").unwrap().put("batch-2.parquet.tmp", Bytes::from_static(b"p")).await.unwrap();
        table.join("shared").unwrap().delete("c").await.unwrap();
        crate::cold::remove_table_files(&table).await.unwrap();
        crate::cold::remove_table_files(&table).await.unwrap();
        assert_eq!(scope.list(false).await.unwrap(), ["b"]);
        assert_eq!(table.list(true).await.unwrap(), ["7"]);
        assert_eq!(root.join("ns").unwrap().join("t2").unwrap().list(false).await.unwrap(), ["d"]);
        // Names that are not one path segment are refused.
        for bad in ["..", ".", "", "a/b", "../x", "a\\b", "x\0y"] {
            assert!(root.join(bad).is_err(), "{bad:?}");
            assert!(scope.put(bad, Bytes::from_static(b"x")).await.is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_directory_stores_whole_files() {
        let tmp = tempfile::tempdir().unwrap();
        exercise(Location::Dir(tmp.path().join("root"))).await;
    }

    #[tokio::test]
    async fn an_object_store_prefix_stores_whole_objects() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        exercise(Location::Object { store: store.clone(), prefix: "base/dir".into() }).await;
        exercise(Location::Object { store, prefix: String::new() }).await;
    }
}
