//! Hugging Face datasets as parquet: list a split's parquet files through the Hub API,
//! download them into a local cache (reused next time), and read their rows as instances.
use std::path::{Path, PathBuf};

use crate::SwebenchError;
use crate::dataset::{Instance, instance_from_value};

/// Short names for the published datasets, as the official harness accepts them.
pub fn resolve_dataset_name(name: &str) -> String {
    match name.to_lowercase().as_str() {
        "verified" | "swe-bench_verified" | "swe-bench-verified" | "swebench-verified" => {
            "princeton-nlp/SWE-bench_Verified".into()
        }
        "lite" | "swe-bench_lite" | "swe-bench-lite" | "swebench-lite" | "swe_bench_lite" => {
            "princeton-nlp/SWE-bench_Lite".into()
        }
        "full" | "swe-bench" | "swebench" | "swe_bench" => "princeton-nlp/SWE-bench".into(),
        _ => name.to_string(),
    }
}

/// Load a dataset given as the CLI's `--dataset`: a local `.jsonl`/`.json`/`.parquet` file,
/// or a Hub dataset name (`verified`, `lite`, `full`, or `owner/name`) fetched and cached.
pub async fn load_dataset(
    name_or_path: &str,
    split: &str,
    opts: &HubOptions,
) -> Result<Vec<Instance>, SwebenchError> {
    let p = Path::new(name_or_path);
    if p.is_file() {
        return match p.extension().and_then(|e| e.to_str()) {
            Some("parquet") => read_parquet(p),
            _ => crate::dataset::load_instances(p),
        };
    }
    if name_or_path.ends_with(".json")
        || name_or_path.ends_with(".jsonl")
        || name_or_path.ends_with(".parquet")
    {
        return Err(SwebenchError::File {
            path: p.to_path_buf(),
            message: "no such file".into(),
        });
    }
    load_hub_dataset(name_or_path, split, opts).await
}

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// `https://huggingface.co` unless told otherwise (mirrors, tests).
    pub base_url: String,
    pub cache_dir: PathBuf,
    /// Sent as a bearer token when set (gated or private datasets).
    pub token: Option<String>,
}

impl HubOptions {
    pub fn new(cache_dir: PathBuf) -> HubOptions {
        HubOptions {
            base_url: "https://huggingface.co".into(),
            cache_dir,
            token: None,
        }
    }
}

/// Load a split of a Hub dataset (e.g. `princeton-nlp/SWE-bench_Verified`, `test`), using the
/// cache when the files are already there.
pub async fn load_hub_dataset(
    name: &str,
    split: &str,
    opts: &HubOptions,
) -> Result<Vec<Instance>, SwebenchError> {
    let name = resolve_dataset_name(name);
    if name.contains("..") || split.contains('/') || split.contains("..") {
        return Err(SwebenchError::Invalid(format!(
            "bad dataset name or split: {name} {split}"
        )));
    }
    let dir = opts.cache_dir.join(name.replace('/', "__")).join(split);
    let files = cached_files(&dir);
    let files = if files.is_empty() {
        download(&name, split, &dir, opts).await?
    } else {
        files
    };
    let mut out = Vec::new();
    for f in files {
        out.extend(read_parquet(&f)?);
    }
    Ok(out)
}

fn cached_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn get(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<reqwest::Response, SwebenchError> {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.map_err(|e| SwebenchError::Download {
        url: url.into(),
        message: e.to_string(),
    })
}

async fn download(
    name: &str,
    split: &str,
    dir: &Path,
    opts: &HubOptions,
) -> Result<Vec<PathBuf>, SwebenchError> {
    let http = crate::http_client()?;
    let base = opts.base_url.trim_end_matches('/');
    // The Hub lists a split's parquet files (its own conversion) at this endpoint.
    let list_url = format!("{base}/api/datasets/{name}/parquet/default/{split}");
    let resp = get(&http, &list_url, opts.token.as_deref()).await?;
    let urls: Vec<String> = if resp.status().is_success() {
        resp.json().await.map_err(|e| SwebenchError::Download {
            url: list_url.clone(),
            message: format!("not a list of URLs: {e}"),
        })?
    } else {
        // Fall back to the usual single-file layout of these datasets.
        vec![format!(
            "{base}/datasets/{name}/resolve/main/data/{split}-00000-of-00001.parquet"
        )]
    };
    if urls.is_empty() {
        return Err(SwebenchError::Download {
            url: list_url,
            message: format!("no parquet files for split `{split}`"),
        });
    }
    std::fs::create_dir_all(dir)
        .map_err(SwebenchError::io(format!("creating {}", dir.display())))?;
    let mut files = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        tracing::info!(%url, "downloading dataset file");
        let resp = get(&http, url, opts.token.as_deref()).await?;
        if !resp.status().is_success() {
            return Err(SwebenchError::Download {
                url: url.clone(),
                message: format!("HTTP {}", resp.status()),
            });
        }
        let bytes = resp.bytes().await.map_err(|e| SwebenchError::Download {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let path = dir.join(format!("{i:05}.parquet"));
        let tmp = dir.join(format!(".{i:05}.parquet.part"));
        std::fs::write(&tmp, &bytes)
            .map_err(SwebenchError::io(format!("writing {}", tmp.display())))?;
        // Check it reads before it enters the cache, so a broken download is not reused.
        read_parquet(&tmp).map_err(|e| SwebenchError::Download {
            url: url.clone(),
            message: format!("the file does not read as SWE-bench parquet: {e}"),
        })?;
        std::fs::rename(&tmp, &path)
            .map_err(SwebenchError::io(format!("renaming to {}", path.display())))?;
        files.push(path);
    }
    Ok(files)
}

/// Read instances from a parquet file (one row per instance, the published columns).
pub fn read_parquet(path: &Path) -> Result<Vec<Instance>, SwebenchError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let name = path.display().to_string();
    let bad = |m: String| SwebenchError::File {
        path: path.to_path_buf(),
        message: m,
    };
    let file = std::fs::File::open(path).map_err(SwebenchError::io(format!("opening {name}")))?;
    let reader =
        SerializedFileReader::new(file).map_err(|e| bad(format!("not a parquet file: {e}")))?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| bad(format!("reading rows: {e}")))?;
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| bad(format!("row {}: {e}", i + 1)))?;
        out.push(instance_from_value(row.to_json_value(), &name, i + 1)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;

    const COLS: [&str; 8] = [
        "instance_id",
        "repo",
        "base_commit",
        "version",
        "patch",
        "test_patch",
        "FAIL_TO_PASS",
        "PASS_TO_PASS",
    ];

    /// A parquet file in the published shape (all string columns, test lists as JSON strings).
    fn write_parquet(path: &Path, rows: &[[&str; 8]]) {
        let schema = format!(
            "message schema {{ {} }}",
            COLS.iter()
                .map(|c| format!("REQUIRED BYTE_ARRAY {c} (UTF8);"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let schema = Arc::new(parquet::schema::parser::parse_message_type(&schema).unwrap());
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build(),
        );
        let mut w =
            SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
        let mut rg = w.next_row_group().unwrap();
        let mut col = 0;
        while let Some(mut c) = rg.next_column().unwrap() {
            let vals: Vec<ByteArray> = rows.iter().map(|r| ByteArray::from(r[col])).collect();
            c.typed::<ByteArrayType>()
                .write_batch(&vals, None, None)
                .unwrap();
            c.close().unwrap();
            col += 1;
        }
        rg.close().unwrap();
        w.close().unwrap();
    }

    const TP: &str = "diff --git a/t.py b/t.py\n--- a/t.py\n+++ b/t.py\n@@ -1 +1 @@\n-a\n+b\n";

    #[tokio::test]
    async fn downloads_caches_and_reads_a_split_from_a_local_hub() {
        use axum::routing::get;
        let src = tempfile::tempdir().unwrap();
        let file = src.path().join("test.parquet");
        write_parquet(
            &file,
            &[
                [
                    "o__r-1",
                    "o/r",
                    "abcdef0",
                    "1.0",
                    "diff",
                    TP,
                    "[\"t.py::a\"]",
                    "[]",
                ],
                [
                    "o__r-2",
                    "o/r",
                    "abcdef1",
                    "1.0",
                    "diff",
                    TP,
                    "[]",
                    "[\"t.py::b\", \"t.py::c\"]",
                ],
            ],
        );
        let bytes = std::fs::read(&file).unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let listing = serde_json::json!([format!("{base}/files/test-0.parquet")]);
        let app = axum::Router::new()
            .route(
                "/api/datasets/princeton-nlp/SWE-bench_Verified/parquet/default/test",
                get(move || async move { axum::Json(listing) }),
            )
            .route(
                "/files/test-0.parquet",
                get(move || {
                    h.fetch_add(1, Ordering::SeqCst);
                    let b = bytes.clone();
                    async move { b }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });

        let cache = tempfile::tempdir().unwrap();
        let opts = HubOptions {
            base_url: base,
            cache_dir: cache.path().to_path_buf(),
            token: None,
        };
        let got = load_hub_dataset("verified", "test", &opts).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].fail_to_pass, Some(vec!["t.py::a".to_string()]));
        assert_eq!(
            got[1].pass_to_pass,
            Some(vec!["t.py::b".to_string(), "t.py::c".to_string()])
        );
        assert_eq!(got[1].base_commit, "abcdef1");
        // Second load: from the cache, no download.
        let again = load_hub_dataset("princeton-nlp/SWE-bench_Verified", "test", &opts)
            .await
            .unwrap();
        assert_eq!(again, got);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert!(
            cache
                .path()
                .join("princeton-nlp__SWE-bench_Verified/test/00000.parquet")
                .exists()
        );
    }

    #[test]
    fn a_bad_row_names_its_row_and_field() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.parquet");
        write_parquet(
            &f,
            &[
                ["o__r-1", "o/r", "abcdef0", "1.0", "", TP, "[]", "[]"],
                ["o__r-2", "o/r", "zzz", "1.0", "", TP, "[]", "[]"],
            ],
        );
        let e = read_parquet(&f).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("base_commit"), "{e}");
        std::fs::write(&f, b"not parquet").unwrap();
        assert!(
            read_parquet(&f)
                .unwrap_err()
                .to_string()
                .contains("not a parquet file")
        );
    }
}
