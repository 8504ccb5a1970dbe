//! `anycast subnet` and `anycast addr add --scope`: subnets' reserved
//! anycast addresses (RFC 2526) and scoped addresses.

use std::io::Write;

use anycast::{
    Dataplane, GroupName, PinDir,
    addr::{parse_anycast, parse_subnet},
    dataplane::StateSizes,
    state::SubnetSpec,
};

use crate::{OutputError, cli::SubnetCommand, print, print_freed};

/// `addr add ADDR --group G --scope IF[,IF...]`.
pub(crate) fn add_scoped(
    pin: PinDir,
    sizes: &StateSizes,
    addr: &str,
    group: &str,
    scope: &[String],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let p = parse_anycast(addr)?;
    let group = GroupName::new(group)?;
    let (_, added) = Dataplane::open_or_create_then(pin, sizes, |dp| {
        dp.add_addresses_scoped(&[p], &group, Some(scope))
    })?;
    let verb = if added > 0 { "added" } else { "kept" };
    say!(
        out,
        "{verb} {p} in group {group}, reached only from {}",
        scope.join(", ")
    );
    Ok(())
}

/// `anycast subnet ...`.
pub(crate) fn command(
    pin: PinDir,
    sizes: &StateSizes,
    cmd: SubnetCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match cmd {
        SubnetCommand::Add {
            subnet,
            group,
            ids,
            subnet_router,
            scope,
        } => {
            let spec = SubnetSpec {
                prefix: parse_subnet(&subnet)?,
                group: GroupName::new(&group)?,
                ids: SubnetSpec::ids_from(&ids)?,
                subnet_router,
            };
            let (dp, added) = Dataplane::open_or_create_then(pin, sizes, |dp| {
                dp.set_subnet(&spec, scope.as_deref())
            })?;
            let entry = dp
                .subnets()?
                .into_iter()
                .find(|e| e.subnet == anycast::addr::subnet_text(spec.prefix));
            say!(
                out,
                "subnet {} in group {}: {added} address{} added",
                anycast::addr::subnet_text(spec.prefix),
                spec.group,
                if added == 1 { "" } else { "es" }
            );
            if let Some(e) = entry {
                print::subnets(out, &[e]).map_err(crate::output)?;
            }
        }
        SubnetCommand::Del { subnet } => {
            let prefix = parse_subnet(&subnet)?;
            let mut dp = Dataplane::open(pin)?;
            let freed = dp.del_subnet(prefix)?;
            say!(
                out,
                "deleted subnet {} and its anycast addresses",
                anycast::addr::subnet_text(prefix)
            );
            print_freed(out, freed)?;
        }
        SubnetCommand::List { json } => {
            let list = Dataplane::open(pin)?.subnets()?;
            if json {
                let doc = serde_json::json!({ "version": 1, "subnets": list });
                say!(out, "{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print::subnets(out, &list).map_err(crate::output)?;
            }
        }
    }
    Ok(())
}
