//! Where the issue comes from: text, `@file`, or a GitHub issue URL fetched over the REST API.
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// What the user passed as `--issue`.
#[derive(Debug, Clone, PartialEq)]
pub enum IssueArg {
    Text(String),
    File(std::path::PathBuf),
    GitHub {
        /// The API base the issue is fetched from (and the token sent to): api.github.com,
        /// or one the user named.
        api: String,
        owner: String,
        repo: String,
        number: u64,
    },
}

/// Where GitHub issue URLs may be fetched from, as the user (never a repository) set it.
#[derive(Debug, Clone, Default)]
pub struct GitHubSettings {
    /// `--github-api` or the user's `github_api`: used for every GitHub issue URL.
    pub api: Option<String>,
    /// The user's `github_hosts`: Enterprise hosts fetched from `https://HOST/api/v3`.
    pub hosts: Vec<String>,
}

pub const GITHUB_API: &str = "https://api.github.com";

impl IssueArg {
    /// Text, `@FILE`, or a GitHub issue URL. Refused: URLs of other trackers or hosts the
    /// user did not name (the token would go there), and a bare file name (`issue.md`
    /// meant as `@issue.md`).
    pub fn parse(s: &str, gh: &GitHubSettings) -> anyhow::Result<IssueArg> {
        if let Some(path) = s.strip_prefix('@') {
            return Ok(IssueArg::File(path.into()));
        }
        let t = s.trim();
        let is_url = (t.starts_with("https://") || t.starts_with("http://"))
            && !t.contains(char::is_whitespace);
        if is_url {
            return parse_url(t, gh);
        }
        if !t.is_empty() && !t.contains('\n') && std::path::Path::new(t).is_file() {
            bail!(
                "--issue `{t}` names a file: did you mean @{t}? (--issue takes the issue's \
                 text, @FILE, or a GitHub issue URL)"
            );
        }
        Ok(IssueArg::Text(s.to_string()))
    }
}

/// `scheme://host` of an issue URL, where its repository can be cloned from.
pub fn web_base(url: &str) -> Option<String> {
    let url = url.trim();
    let scheme = if url.starts_with("https://") {
        "https"
    } else if url.starts_with("http://") {
        "http"
    } else {
        return None;
    };
    Some(format!("{scheme}://{}", host_of(url)?))
}

fn host_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    Some(host.to_ascii_lowercase())
}

fn parse_url(url: &str, gh: &GitHubSettings) -> anyhow::Result<IssueArg> {
    let host = host_of(url).unwrap_or_default();
    let host_name = host.split(':').next().unwrap_or("");
    let is_github_com = matches!(host_name, "github.com" | "www.github.com");
    let enterprise = gh.hosts.iter().any(|h| h.eq_ignore_ascii_case(&host))
        || gh.hosts.iter().any(|h| h.eq_ignore_ascii_case(host_name));
    let api = match (&gh.api, is_github_com, enterprise) {
        (Some(api), _, _) => api.clone(),
        (None, true, _) => GITHUB_API.to_string(),
        (None, false, true) => format!("https://{host}/api/v3"),
        (None, false, false) => bail!(
            "--issue {url}: mend fetches issues from github.com only, or from a GitHub \
             Enterprise host you name (--github-api https://{host}/api/v3, or \
             github_hosts = [\"{host}\"] in ~/.config/mend/mend.toml); for other trackers \
             pass the issue's text or @FILE"
        ),
    };
    let path = url
        .split_once("://")
        .and_then(|(_, r)| r.split_once('/'))
        .map(|(_, p)| p.split(['?', '#']).next().unwrap_or(""))
        .unwrap_or("");
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        [owner, repo, "issues", n] if !owner.is_empty() && !repo.is_empty() => {
            match n.parse::<u64>() {
                Ok(number) => Ok(IssueArg::GitHub {
                    api,
                    owner: owner.to_string(),
                    repo: repo.to_string(),
                    number,
                }),
                Err(_) => bail!("--issue {url}: `{n}` is not an issue number"),
            }
        }
        _ => bail!(
            "--issue {url} is not a GitHub issue URL (https://{host}/OWNER/REPO/issues/N); \
             pass the issue's text or @FILE"
        ),
    }
}

/// The issue as the agent reads it.
#[derive(Debug, Clone)]
pub struct Issue {
    pub title: Option<String>,
    pub text: String,
    /// `owner/repo` when it came from GitHub.
    pub repo: Option<String>,
}

#[derive(Deserialize)]
struct GhIssue {
    title: String,
    body: Option<String>,
    #[serde(default)]
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct GhComment {
    body: Option<String>,
    user: Option<GhUser>,
}

#[derive(Deserialize)]
struct GhUser {
    login: String,
}

pub async fn load(arg: &IssueArg, token: Option<&str>) -> anyhow::Result<Issue> {
    match arg {
        IssueArg::Text(t) if t.trim().is_empty() => bail!("the issue text is empty"),
        IssueArg::Text(t) => Ok(Issue {
            title: None,
            text: t.clone(),
            repo: None,
        }),
        IssueArg::File(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading the issue file {}", p.display()))?;
            if text.trim().is_empty() {
                bail!("the issue file {} is empty", p.display());
            }
            Ok(Issue {
                title: None,
                text,
                repo: None,
            })
        }
        IssueArg::GitHub {
            api,
            owner,
            repo,
            number,
        } => fetch_github(api, token, owner, repo, *number).await,
    }
}

async fn fetch_github(
    api_base: &str,
    token: Option<&str>,
    owner: &str,
    repo: &str,
    number: u64,
) -> anyhow::Result<Issue> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("mend/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let base = api_base.trim_end_matches('/');
    let get = |url: String| {
        let mut req = client
            .get(url)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req
    };
    let what = format!("{owner}/{repo}#{number}");
    let resp = get(format!("{base}/repos/{owner}/{repo}/issues/{number}"))
        .send()
        .await
        .with_context(|| format!("fetching GitHub issue {what} from {base}"))?;
    let issue: GhIssue = read_json(resp, &what, token.is_some()).await?;
    if issue.pull_request.is_some() {
        tracing::info!("{what} is a pull request; using its description as the issue");
    }
    let resp = get(format!(
        "{base}/repos/{owner}/{repo}/issues/{number}/comments?per_page=100"
    ))
    .send()
    .await
    .with_context(|| format!("fetching the comments of {what}"))?;
    let comments: Vec<GhComment> = read_json(resp, &what, token.is_some()).await?;
    let mut text = format!(
        "# {}\n\n{}\n",
        issue.title,
        issue.body.unwrap_or_default().trim()
    );
    for c in comments
        .iter()
        .filter(|c| c.body.as_deref().is_some_and(|b| !b.trim().is_empty()))
    {
        let who = c
            .user
            .as_ref()
            .map(|u| u.login.as_str())
            .unwrap_or("someone");
        text.push_str(&format!(
            "\n---\n{who} commented:\n{}\n",
            c.body.as_deref().unwrap_or("").trim()
        ));
    }
    Ok(Issue {
        title: Some(issue.title),
        text,
        repo: Some(format!("{owner}/{repo}")),
    })
}

async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
    has_token: bool,
) -> anyhow::Result<T> {
    let status = resp.status();
    let remaining = resp
        .headers()
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let reset = resp
        .headers()
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    match status.as_u16() {
        200..=299 => serde_json::from_str(&body)
            .with_context(|| format!("GitHub's answer for {what} is not the JSON it should be")),
        404 if !has_token => bail!(
            "GitHub issue {what} was not found; if the repository is private, set GITHUB_TOKEN"
        ),
        404 => bail!("GitHub issue {what} was not found (or GITHUB_TOKEN cannot see it)"),
        401 => bail!("GitHub refused GITHUB_TOKEN for {what}: {message}"),
        403 | 429
            if remaining.as_deref() == Some("0")
                || message.to_lowercase().contains("rate limit") =>
        {
            let when = reset
                .and_then(|r| r.parse::<u64>().ok())
                .map(|r| format!(" (resets at unix time {r})"))
                .unwrap_or_default();
            let hint = if has_token {
                ""
            } else {
                "; set GITHUB_TOKEN for a higher limit"
            };
            bail!("GitHub's API rate limit is exhausted{when}{hint}")
        }
        code => bail!("GitHub answered {code} for {what}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_issue_arguments() {
        let gh = GitHubSettings::default();
        let parse = |s: &str| IssueArg::parse(s, &gh);
        assert_eq!(
            parse("@notes/bug.md").unwrap(),
            IssueArg::File("notes/bug.md".into())
        );
        assert_eq!(
            parse("https://github.com/psf/requests/issues/6028").unwrap(),
            IssueArg::GitHub {
                api: GITHUB_API.into(),
                owner: "psf".into(),
                repo: "requests".into(),
                number: 6028
            }
        );
        assert_eq!(
            parse("add() returns the difference").unwrap(),
            IssueArg::Text("add() returns the difference".into())
        );
        assert_eq!(
            web_base("https://ghe.example.com/a/b/issues/1").as_deref(),
            Some("https://ghe.example.com")
        );
        let err = parse("https://github.com/psf/requests/pull/1").unwrap_err();
        assert!(err.to_string().contains("not a GitHub issue URL"), "{err}");
    }

    #[test]
    fn other_hosts_need_the_user_to_name_them() {
        let none = GitHubSettings::default();
        for url in [
            "https://gitlab.com/acme/app/-/issues/3",
            "https://ghe.example.com/acme/app/issues/3",
            "https://github.com.evil.example/acme/app/issues/3",
        ] {
            let err = IssueArg::parse(url, &none).unwrap_err().to_string();
            assert!(err.contains("github.com only"), "{url}: {err}");
        }
        let hosts = GitHubSettings {
            api: None,
            hosts: vec!["ghe.example.com".into()],
        };
        match IssueArg::parse("https://ghe.example.com/acme/app/issues/3", &hosts).unwrap() {
            IssueArg::GitHub { api, number, .. } => {
                assert_eq!(api, "https://ghe.example.com/api/v3");
                assert_eq!(number, 3);
            }
            other => panic!("{other:?}"),
        }
        let flag = GitHubSettings {
            api: Some("https://ghe.example.com/api/v3".into()),
            hosts: vec![],
        };
        assert!(matches!(
            IssueArg::parse("https://ghe.example.com/acme/app/issues/3", &flag).unwrap(),
            IssueArg::GitHub { api, .. } if api == "https://ghe.example.com/api/v3"
        ));
    }

    #[test]
    fn a_bare_file_name_is_refused_with_a_hint() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("issue.md");
        std::fs::write(&f, "the bug").unwrap();
        let name = f.display().to_string();
        let err = IssueArg::parse(&name, &GitHubSettings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("did you mean @{name}?")), "{err}");
    }
}
