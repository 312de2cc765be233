//! A store whose listings show only a dataset's committed files.
//!
//! A commit moves files into place one by one (on S3: copy and delete), so
//! while a commit is under way, or after one was killed, a folder listing
//! shows files no commit record lists. DataFusion's listing table reads what
//! it lists; wrapped in this view it lists exactly the files of the dataset's
//! commit records (and the folders that lead to them), so `dynolake sql`
//! reads the old dataset or the new one, never a part of a commit. Reads go
//! straight to the store underneath; writes are refused.

use std::collections::HashSet;
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
    files: Arc<HashSet<Path>>,
    dirs: Arc<HashSet<Path>>,
}

impl CommittedView {
    /// `files`: every committed file, as paths of `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, files: impl IntoIterator<Item = Path>) -> CommittedView {
        let files: HashSet<Path> = files.into_iter().collect();
        let mut dirs = HashSet::new();
        for f in &files {
            let parts: Vec<_> = f.parts().collect();
            for n in 1..parts.len() {
                dirs.insert(Path::from_iter(parts[..n].iter().cloned()));
            }
        }
        CommittedView { inner, files: Arc::new(files), dirs: Arc::new(dirs) }
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
        let files = self.files.clone();
        self.inner
            .list(prefix)
            .filter(move |m| futures::future::ready(m.as_ref().map_or(true, |m| files.contains(&m.location))))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        r.objects.retain(|m| self.files.contains(&m.location));
        r.common_prefixes.retain(|p| self.dirs.contains(p));
        Ok(r)
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(read_only())
    }
}
