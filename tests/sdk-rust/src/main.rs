//! Run inside `podid exec`: the default credential chain must find the container credentials
//! (the podid agent). Prints one JSON object: the caller identity, and the outcome of
//! `iam:ListRoles` and of `iam:GetRole` on the role named by the first argument.

use aws_sdk_iam::error::ProvideErrorMetadata as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let role = std::env::args().nth(1).unwrap_or_default();
    let config = aws_config::load_from_env().await;
    let sts = aws_sdk_sts::Client::new(&config);
    let iam = aws_sdk_iam::Client::new(&config);
    let me = match sts.get_caller_identity().send().await {
        Ok(me) => me,
        Err(e) => {
            eprintln!("GetCallerIdentity failed: {:?}", e);
            return std::process::ExitCode::from(3);
        }
    };
    let outcome = |r: Result<(), String>| match r {
        Ok(()) => "allowed".to_owned(),
        Err(code) => code,
    };
    let list = iam
        .list_roles()
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.code().unwrap_or("error").to_owned());
    let get = iam
        .get_role()
        .role_name(&role)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.code().unwrap_or("error").to_owned());
    println!(
        "{}",
        serde_json::json!({
            "Arn": me.arn(),
            "Account": me.account(),
            "ListRoles": outcome(list),
            "GetRole": outcome(get),
        })
    );
    std::process::ExitCode::SUCCESS
}
