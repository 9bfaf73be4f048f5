//! The create request that recreates a container as `docker run` would
//! have with the same settings, built from its inspect: a pure function,
//! tested on a recorded inspect.
//!
//! Copying the inspect back is what loses settings or data elsewhere, so:
//! - image defaults merged into `Config` (env, labels, volumes, ports,
//!   entrypoint and cmd, workdir, user, healthcheck, stop signal) are
//!   left out, so that the image the name now points at brings its own;
//! - anonymous volumes (`-v /path`, an image `VOLUME`) are re-attached by
//!   name, or the new container would get empty ones;
//! - `Hostname` is left out when the Engine chose it (the old short id) or
//!   the network mode owns it (`container:`, `host`);
//! - networks keep their aliases (without the old short id the Engine
//!   adds), static addresses, links and driver options: the network the
//!   mode names goes into the create request, the others are connected
//!   before the start (an Engine before API 1.44 takes one at create);
//! - legacy links are turned back from `/db:/web/alias` into `db:alias`;
//! - Compose's labels are kept, with `com.docker.compose.image` (the image
//!   id Compose compares to decide on a recreate) moved to the new image.

use serde_json::{Map, Value};

/// The label Compose keeps the service image's id in.
const COMPOSE_IMAGE_LABEL: &str = "com.docker.compose.image";

/// How to create the replacement of a container.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatePlan {
    /// The container's name (without `/`).
    pub name: String,
    /// The image as the container was created with it (`NAME:TAG`).
    pub image: String,
    /// The body of `POST /containers/create`.
    pub body: Value,
    /// Networks to connect after the create, each with its endpoint.
    pub networks: Vec<(String, Value)>,
}

/// Builds the create request from the container's inspect, the config of
/// the image it runs (`Null` when unknown: nothing is left out) and the id
/// of the image its name now points at.
pub fn create_plan(inspect: &Value, image_config: &Value, new_image_id: &str) -> Result<CreatePlan, String> {
    let name = inspect["Name"].as_str().unwrap_or_default().trim_start_matches('/').to_string();
    let id = inspect["Id"].as_str().unwrap_or_default();
    let mut config = inspect["Config"].as_object().cloned().ok_or("the inspect has no Config")?;
    let mut host = inspect["HostConfig"].as_object().cloned().ok_or("the inspect has no HostConfig")?;
    let image = config.get("Image").and_then(Value::as_str).unwrap_or_default().to_string();
    if image.is_empty() || image.starts_with("sha256:") || image.contains('@') {
        return Err(format!("the container names its image as `{image}`, not by a name a patch in place moves"));
    }
    if host.get("AutoRemove").and_then(Value::as_bool) == Some(true) {
        return Err("the container was started with --rm: stopping it would remove it and its anonymous volumes, leaving nothing to roll back to".into());
    }
    let mode = host.get("NetworkMode").and_then(Value::as_str).unwrap_or("default").to_string();
    let shared_net = mode.starts_with("container:") || mode == "host" || mode == "none";

    leave_out_image_defaults(&mut config, image_config);
    let short_id = id.get(..12).unwrap_or(id);
    if shared_net || config.get("Hostname").and_then(Value::as_str) == Some(short_id) {
        config.remove("Hostname");
    }
    if let Some(Value::Object(labels)) = config.get_mut("Labels") {
        let old_image = inspect["Image"].as_str().unwrap_or_default();
        if let Some(l) = labels.get_mut(COMPOSE_IMAGE_LABEL).filter(|l| l.as_str() == Some(old_image)) {
            *l = new_image_id.into();
        }
    }
    expose_published_ports(&mut config, &host);
    reattach_anonymous_volumes(&mut host, inspect["Mounts"].as_array().map(Vec::as_slice).unwrap_or_default());
    if let Some(Value::Array(links)) = host.get_mut("Links") {
        links.iter_mut().for_each(|l| *l = legacy_link(l.as_str().unwrap_or_default()).into());
    }

    let mut networks: Vec<(String, Value)> = match inspect["NetworkSettings"]["Networks"].as_object() {
        Some(n) if !shared_net => n.iter().map(|(k, v)| (k.clone(), endpoint(v, short_id))).collect(),
        _ => Vec::new(),
    };
    let primary_name = if mode == "default" { "bridge" } else { mode.as_str() };
    let primary = networks.iter().position(|(n, _)| n == primary_name).or(if networks.is_empty() { None } else { Some(0) });
    let mut body = config;
    if let Some(i) = primary {
        let (net, ep) = networks.remove(i);
        body.insert("NetworkingConfig".into(), serde_json::json!({ "EndpointsConfig": { net: ep } }));
    }
    body.insert("HostConfig".into(), Value::Object(host));
    Ok(CreatePlan { name, image, body: Value::Object(body), networks })
}

/// Removes from the container's config what equals its image's defaults.
fn leave_out_image_defaults(config: &mut Map<String, Value>, image: &Value) {
    if !image.is_object() {
        return;
    }
    let same = |c: &Map<String, Value>, key: &str| c.get(key).is_some_and(|v| !v.is_null() && *v == image[key]);
    if same(config, "Entrypoint") {
        config.remove("Entrypoint");
        if same(config, "Cmd") {
            config.remove("Cmd");
        }
    }
    for key in ["WorkingDir", "User", "Healthcheck", "StopSignal", "Shell", "OnBuild"] {
        if same(config, key) {
            config.remove(key);
        }
    }
    if let (Some(Value::Array(env)), Some(image_env)) = (config.get_mut("Env"), image["Env"].as_array()) {
        env.retain(|e| !image_env.contains(e));
    }
    for key in ["Labels", "Volumes", "ExposedPorts"] {
        if let (Some(Value::Object(mine)), Some(theirs)) = (config.get_mut(key), image[key].as_object()) {
            mine.retain(|k, v| theirs.get(k) != Some(v));
        }
    }
}

/// `docker run -p` exposes what it publishes; the Engine does not.
fn expose_published_ports(config: &mut Map<String, Value>, host: &Map<String, Value>) {
    let Some(bindings) = host.get("PortBindings").and_then(Value::as_object).filter(|b| !b.is_empty()) else { return };
    let exposed = config.entry("ExposedPorts").or_insert_with(|| Value::Object(Map::new()));
    if !exposed.is_object() {
        *exposed = Value::Object(Map::new());
    }
    for port in bindings.keys() {
        exposed.as_object_mut().expect("an object").entry(port.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Adds `NAME:DEST[:ro]` binds for the volumes mounted without a bind or
/// mount naming them (anonymous ones, from `-v /path` or an image VOLUME).
fn reattach_anonymous_volumes(host: &mut Map<String, Value>, mounts: &[Value]) {
    let bind_dest = |b: &str| b.split(':').nth(1).map(str::to_string);
    let mut named: Vec<String> = host.get("Binds").and_then(Value::as_array).into_iter().flatten().filter_map(|b| b.as_str().and_then(bind_dest)).collect();
    named.extend(host.get("Mounts").and_then(Value::as_array).into_iter().flatten().filter_map(|m| m["Target"].as_str().map(str::to_string)));
    let extra: Vec<Value> = mounts
        .iter()
        .filter(|m| m["Type"] == "volume" && m["Name"].as_str().is_some_and(|n| !n.is_empty()))
        .filter(|m| m["Destination"].as_str().is_some_and(|d| !named.iter().any(|n| n == d)))
        .map(|m| {
            let ro = if m["RW"] == false { ":ro" } else { "" };
            format!("{}:{}{ro}", m["Name"].as_str().unwrap_or_default(), m["Destination"].as_str().unwrap_or_default()).into()
        })
        .collect();
    if extra.is_empty() {
        return;
    }
    match host.get_mut("Binds") {
        Some(Value::Array(binds)) => binds.extend(extra),
        _ => {
            host.insert("Binds".into(), Value::Array(extra));
        }
    }
}

/// What a network endpoint is created with: aliases (not the Engine's
/// alias of the old short id), static addresses, links, driver options.
fn endpoint(settings: &Value, short_id: &str) -> Value {
    let mut ep = Map::new();
    if let Some(aliases) = settings["Aliases"].as_array() {
        let kept: Vec<Value> = aliases.iter().filter(|a| a.as_str() != Some(short_id)).cloned().collect();
        if !kept.is_empty() {
            ep.insert("Aliases".into(), kept.into());
        }
    }
    for key in ["IPAMConfig", "Links", "DriverOpts"] {
        if !settings[key].is_null() {
            ep.insert(key.into(), settings[key].clone());
        }
    }
    Value::Object(ep)
}

/// A link as inspect shows it (`/db:/web/alias`) as `run --link` takes it
/// (`db:alias`); other forms are kept.
fn legacy_link(link: &str) -> String {
    match link.split_once(':') {
        Some((target, alias)) if target.starts_with('/') && alias.starts_with('/') => {
            format!("{}:{}", target.trim_start_matches('/'), alias.rsplit('/').next().unwrap_or(alias))
        }
        _ => link.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recorded() -> (Value, Value) {
        let inspect = serde_json::from_str(include_str!("../../testdata/container-inspect.json")).unwrap();
        let image = serde_json::from_str(include_str!("../../testdata/image-config.json")).unwrap();
        (inspect, image)
    }

    const NEW_ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    /// The recorded container: `docker create --name web --network front
    /// --network-alias web-alias --ip 172.30.0.10 -p 127.0.0.1:18080:80
    /// -v named:/data -v /anon -e A=1 -u 1000:1000 -w /srv --entrypoint
    /// /bin/sh -l com.docker.compose.project=proj ... --restart
    /// unless-stopped -m 64m --log-opt max-size=1m --stop-signal SIGINT
    /// --stop-timeout 3 --health-cmd true app:1 -c 'sleep 600'`, then
    /// `network connect --alias back-alias back web`; the image has
    /// `VOLUME /cache`, `ENV PATH=...`, `CMD ["/bin/true"]`, `WORKDIR /`.
    #[test]
    fn builds_the_run_request_from_a_recorded_inspect() {
        let (inspect, image) = recorded();
        let plan = create_plan(&inspect, &image, NEW_ID).unwrap();
        let b = &plan.body;
        assert_eq!((plan.name.as_str(), plan.image.as_str(), b["Image"].as_str()), ("web", "app:1", Some("app:1")));
        assert_eq!(b["Env"], json!(["A=1"]), "the image's PATH is the image's to set");
        assert_eq!((&b["User"], &b["WorkingDir"], &b["Entrypoint"], &b["Cmd"]), (&json!("1000:1000"), &json!("/srv"), &json!(["/bin/sh"]), &json!(["-c", "sleep 600"])));
        assert_eq!(b["Healthcheck"], json!({"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000u64}));
        assert_eq!((&b["StopSignal"], &b["StopTimeout"]), (&json!("SIGINT"), &json!(3)));
        assert!(b.get("Hostname").is_none(), "the Engine's hostname (the old short id) is not pinned: {b:#}");
        assert_eq!(b["Labels"]["com.docker.compose.project"], "proj");
        assert_eq!(b["Labels"]["com.docker.compose.service"], "web");
        assert_eq!(b["Labels"][COMPOSE_IMAGE_LABEL], NEW_ID, "Compose's image label follows the image");
        assert_eq!(b["Volumes"], json!({"/anon": {}}), "the image's VOLUME is the image's");
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}}));
        let h = &b["HostConfig"];
        let binds: Vec<&str> = h["Binds"].as_array().unwrap().iter().map(|b| b.as_str().unwrap()).collect();
        assert_eq!(binds, ["named:/data", "2fcaa0764269a4a1b005d5cae4729daf40c459d7636a4e6eb6e14189f635d1ec:/anon", "0e826bdbf0aa9ae8a3de7be5c0d86fcd1a0b5429fa8e737126e6afa28afee925:/cache"]);
        assert_eq!((&h["Memory"], &h["RestartPolicy"]["Name"], &h["LogConfig"]["Config"]["max-size"]), (&json!(67108864), &json!("unless-stopped"), &json!("1m")));
        assert_eq!(h["PortBindings"], json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]}));
        assert_eq!(b["NetworkingConfig"], json!({"EndpointsConfig": {"front": {"Aliases": ["web-alias"], "IPAMConfig": {"IPv4Address": "172.30.0.10"}}}}), "the mode's network at create");
        assert_eq!(plan.networks, vec![("back".to_string(), json!({"Aliases": ["back-alias"], "IPAMConfig": {}, "DriverOpts": {}}))], "the short-id alias is the Engine's");
    }

    #[test]
    fn without_the_image_nothing_is_left_out() {
        let (inspect, _) = recorded();
        let plan = create_plan(&inspect, &Value::Null, NEW_ID).unwrap();
        assert_eq!(plan.body["Env"], json!(["A=1", "PATH=/usr/bin:/bin"]));
        assert_eq!(plan.body["Volumes"], json!({"/anon": {}, "/cache": {}}));
    }

    #[test]
    fn shared_network_modes_and_explicit_hostnames() {
        let (mut inspect, image) = recorded();
        inspect["HostConfig"]["NetworkMode"] = json!("container:0123456789ab");
        let plan = create_plan(&inspect, &image, NEW_ID).unwrap();
        assert!(plan.body.get("NetworkingConfig").is_none() && plan.networks.is_empty(), "{plan:?}");
        assert!(plan.body.get("Hostname").is_none());
        inspect["HostConfig"]["NetworkMode"] = json!("front");
        inspect["Config"]["Hostname"] = json!("web.example");
        let plan = create_plan(&inspect, &image, NEW_ID).unwrap();
        assert_eq!(plan.body["Hostname"], "web.example", "a hostname the user chose is kept");
    }

    #[test]
    fn refuses_what_cannot_be_recreated_safely() {
        let (mut inspect, image) = recorded();
        inspect["HostConfig"]["AutoRemove"] = json!(true);
        assert!(create_plan(&inspect, &image, NEW_ID).unwrap_err().contains("--rm"));
        inspect["HostConfig"]["AutoRemove"] = json!(false);
        inspect["Config"]["Image"] = json!("app@sha256:00");
        assert!(create_plan(&inspect, &image, NEW_ID).unwrap_err().contains("app@sha256:00"));
    }

    #[test]
    fn legacy_links_are_turned_back() {
        assert_eq!(legacy_link("/db:/web/database"), "db:database");
        assert_eq!(legacy_link("db:database"), "db:database");
    }

    #[test]
    fn entrypoint_and_cmd_of_the_image_are_the_image_s() {
        let (mut inspect, mut image) = recorded();
        image["Entrypoint"] = json!(["/bin/sh"]);
        image["Cmd"] = json!(["-c", "sleep 600"]);
        let plan = create_plan(&inspect, &image, NEW_ID).unwrap();
        assert!(plan.body.get("Entrypoint").is_none() && plan.body.get("Cmd").is_none(), "{:#}", plan.body);
        inspect["Config"]["Cmd"] = json!(["-c", "other"]);
        let plan = create_plan(&inspect, &image, NEW_ID).unwrap();
        assert_eq!((plan.body.get("Entrypoint"), &plan.body["Cmd"]), (None, &json!(["-c", "other"])));
    }
}
