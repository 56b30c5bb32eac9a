//! What the model layer's integration tests share: a client for the test server, a
//! two-message conversation and tool definitions.
#![allow(dead_code)] // each test file uses its own subset

use mend_llm::test_server::TestServer;
use mend_llm::{Message, ModelConfig, OpenAiCompatible, ToolDef};
use serde_json::Value;

/// Tools named `names`, each taking `parameters` (a JSON schema).
pub fn tool_defs(names: &[&str], parameters: Value) -> Vec<ToolDef> {
    names
        .iter()
        .map(|n| ToolDef {
            name: n.to_string(),
            description: format!("the {n} tool"),
            parameters: parameters.clone(),
        })
        .collect()
}

/// A client for `server`, its config adjusted by `edit`, with no API key in the environment.
pub fn client(
    server: &TestServer,
    model: &str,
    edit: impl FnOnce(&mut ModelConfig),
) -> OpenAiCompatible {
    let mut config = server.config(model);
    edit(&mut config);
    OpenAiCompatible::with_env(config, |_| None).unwrap()
}

pub fn convo() -> Vec<Message> {
    vec![
        Message::system("You are mend."),
        Message::user("Fix the bug in a.py"),
    ]
}
