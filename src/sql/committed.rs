//! A store whose listings show only a dataset's committed files.
//!
//! A commit moves files into place one by one (on S3: copy and delete), so
//! while a commit is under way, or after one was killed, a folder listing
//! shows files no commit record lists. DataFusion's listing table reads what
//! it lists; wrapped in this view it lists exactly the files of the dataset's
//! commit records (and the folders that lead to them), so `dynolake sql`
//! reads the old dataset or the new one, never a part of a commit. Reads go
//! straight to the store underneath; writes are refused.
//!
//! Listings come from the records, not from the store: no LIST requests,
//! and paths exactly as written (object_store's local listing percent-decodes
//! file names, so a Hive-escaped `status=a%2Fb` would come back as `a/b`).

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult,
};

#[derive(Debug)]
pub struct CommittedView {
    inner: Arc<dyn ObjectStore>,
    /// Every committed file (a path of `inner`) and its size.
    files: Arc<Vec<ObjectMeta>>,
}

impl CommittedView {
    /// `files`: every committed file, as paths of `inner`, with its size.
    pub fn new(inner: Arc<dyn ObjectStore>, files: impl IntoIterator<Item = (Path, u64)>) -> CommittedView {
        let modified = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let mut files: Vec<ObjectMeta> = files
            .into_iter()
            .map(|(location, size)| ObjectMeta { location, last_modified: modified, size, e_tag: None, version: None })
            .collect();
        files.sort_by(|a, b| a.location.cmp(&b.location));
        CommittedView { inner, files: Arc::new(files) }
    }

    fn under<'a>(&'a self, prefix: Option<&'a Path>) -> impl Iterator<Item = &'a ObjectMeta> + 'a {
        self.files.iter().filter(move |m| prefix.is_none_or(|p| m.location.prefix_matches(p)))
    }
}

impl std::fmt::Display for CommittedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "committed files of {}", self.inner)
    }
}

fn read_only() -> object_store::Error {
    object_store::Error::NotSupported { source: "a dataset is read-only in SQL".into() }
}

#[async_trait]
impl ObjectStore for CommittedView {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> object_store::Result<PutResult> {
        Err(read_only())
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only())
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|_| Err(read_only())).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let found: Vec<object_store::Result<ObjectMeta>> = self.under(prefix).cloned().map(Ok).collect();
        futures::stream::iter(found).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let depth = prefix.map_or(0, |p| p.parts().count());
        let mut objects = Vec::new();
        let mut common_prefixes: Vec<Path> = Vec::new();
        for m in self.under(prefix) {
            let parts: Vec<_> = m.location.parts().collect();
            if parts.len() == depth + 1 {
                objects.push(m.clone());
            } else {
                let dir = Path::from_iter(parts[..=depth].iter().cloned());
                if common_prefixes.last() != Some(&dir) {
                    common_prefixes.push(dir);
                }
            }
        }
        common_prefixes.dedup();
        Ok(ListResult { common_prefixes, objects })
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(read_only())
    }
}
