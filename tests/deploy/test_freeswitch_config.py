"""The FreeSWITCH configuration the freeswitch role renders, read back as FreeSWITCH reads it.

Every template is rendered for each media node of the example inventory (plain Jinja2 with
Ansible's rules, tests/deploy/inventory.py), parsed with xml.etree, and the includes of
freeswitch.xml are followed relative to the including file, as FreeSWITCH's preprocessor does.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

import pytest
from jinja2 import UndefinedError

from esl.apps import MediaConfig
from tests.deploy.inventory import ANSIBLE_DIR, ROLES_DIR, VAULTED, Inventory

TEMPLATES = ROLES_DIR / "freeswitch" / "templates"
XML_TEMPLATES = sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.xml.j2"))
MEDIA_NODES = ["media1", "media2"]
KAMAILIO = {"198.51.100.10"}
CONTROLLERS = ["10.20.0.31:8084", "10.20.0.32:8084"]


def rendered_tree(inventory: Inventory, host: str) -> dict[str, str]:
    """conf-dir-relative path -> text, as the role's config tasks lay them out."""
    profile = inventory.hostvars[host]["freeswitch_sofia_profile"]
    files = {}
    for template in XML_TEMPLATES:
        dest = template.removesuffix(".j2")
        if dest == "sip_profiles/profile.xml":
            dest = f"sip_profiles/{profile}.xml"
        files[dest] = inventory.render("freeswitch", template, host)
    return files


def assemble(files: dict[str, str]) -> ET.Element:
    """freeswitch.xml with every X-PRE-PROCESS include replaced by the included file's root
    (an <include> wrapper contributes its children), paths relative to the including file."""

    def expand(element: ET.Element, here: PurePosixPath) -> None:
        for index, child in reversed(list(enumerate(element))):
            if child.tag == "X-PRE-PROCESS":
                assert child.get("cmd") == "include", child.attrib
                target = str(PurePosixPath(*(here / child.get("data", "")).parts))
                target = _normalise(target)
                assert target in files, f"include of a file the role does not write: {target}"
                root = ET.fromstring(files[target])
                expand(root, PurePosixPath(target).parent)
                element.remove(child)
                parts = list(root) if root.tag == "include" else [root]
                for offset, part in enumerate(parts):
                    element.insert(index + offset, part)
            else:
                expand(child, here)

    document = ET.fromstring(files["freeswitch.xml"])
    expand(document, PurePosixPath("."))
    return document


def _normalise(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def params(element: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in element.iter("param")}


def configuration(document: ET.Element, name: str) -> ET.Element:
    found = document.findall(f"./section[@name='configuration']/configuration[@name='{name}']")
    assert len(found) == 1, f"{name}: {len(found)} definitions"
    return found[0]


def acl_nodes(document: ET.Element, name: str) -> tuple[str, set[str]]:
    lists = configuration(document, "acl.conf").findall(f"./network-lists/list[@name='{name}']")
    assert len(lists) == 1
    return lists[0].get("default", ""), {
        n.get("cidr", "") for n in lists[0].findall("node") if n.get("type") == "allow"
    }


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return Inventory()


@pytest.fixture(scope="module", params=MEDIA_NODES)
def node(request: pytest.FixtureRequest, inventory: Inventory) -> tuple[str, ET.Element]:
    return request.param, assemble(rendered_tree(inventory, request.param))


@pytest.mark.parametrize("template", XML_TEMPLATES)
@pytest.mark.parametrize("host", MEDIA_NODES)
def test_every_template_renders_to_well_formed_xml(
    inventory: Inventory, host: str, template: str
) -> None:
    text = inventory.render("freeswitch", template, host)
    ET.fromstring(text)  # raises on anything FreeSWITCH's XML parser would refuse
    assert "{{" not in text and "{%" not in text
    assert "$${" not in text  # no preprocessor variable left to a vars.xml we do not ship


def test_freeswitch_xml_names_every_file_and_loads_nothing_else(inventory: Inventory) -> None:
    files = rendered_tree(inventory, "media1")
    document = ET.fromstring(files["freeswitch.xml"])
    includes = [e.get("data", "") for e in document.iter("X-PRE-PROCESS")]
    assert all("*" not in data for data in includes)  # no glob: stray files are never read
    assembled = assemble(files)
    names = {c.get("name") for c in assembled.iter("configuration")}
    assert names == {
        "modules.conf", "switch.conf", "console.conf", "logfile.conf", "acl.conf",
        "event_socket.conf", "sofia.conf", "local_stream.conf", "conference.conf",
    }  # fmt: skip


def test_dialplan_hands_every_call_to_a_controller_with_failover(
    node: tuple[str, ET.Element],
) -> None:
    _, document = node
    profile = configuration(document, "sofia.conf").find("./profiles/profile")
    assert profile is not None
    context_name = params(profile)["context"]
    contexts = document.findall("./section[@name='dialplan']/context")
    assert [c.get("name") for c in contexts] == [context_name]
    extensions = contexts[0].findall("extension")
    assert len(extensions) == 1
    conditions = extensions[0].findall("condition")
    assert len(conditions) == 1
    condition = conditions[0]
    pattern = re.compile(condition.get("expression", ""))
    for number in ("", "7000", "+4930123456", "queue-sales", "*97"):
        assert pattern.search(number), f"destination {number!r} would not reach a controller"
    actions = [(a.get("application"), a.get("data", "")) for a in condition.findall("action")]
    assert not condition.findall("anti-action")
    # FreeSWITCH holds no call logic: state for the controller, the sockets, a last resort.
    assert {app for app, _ in actions} == {"set", "socket", "hangup"}
    sockets = [data for app, data in actions if app == "socket"]
    assert [s.rsplit(" ", 2)[1:] for s in sockets] == [["async", "full"]] * len(sockets)
    assert [s.split(" ")[0] for s in sockets] == CONTROLLERS
    first_socket = actions.index(("socket", sockets[0]))
    assert ("set", "socket_resume=true") in actions[:first_socket]
    assert actions[-1] == ("hangup", "NORMAL_TEMPORARY_FAILURE")


def test_a_single_controller_is_tried_twice(inventory: Inventory) -> None:
    """With one controller the failover `socket` reaches the same address: a restarted
    controller takes the call over from Redis."""
    import yaml

    hosts = yaml.safe_load((ANSIBLE_DIR / "inventory/example/hosts.yml").read_text())
    del hosts["all"]["children"]["esl_controller"]["hosts"]["app2"]
    document = assemble(rendered_tree(Inventory(hosts_yaml=hosts), "media1"))
    sockets = [a.get("data") for a in document.iter("action") if a.get("application") == "socket"]
    assert sockets == ["10.20.0.31:8084 async full"] * 2


def test_sip_profile_accepts_invites_from_the_kamailio_proxies_only(
    inventory: Inventory, node: tuple[str, ET.Element]
) -> None:
    host, document = node
    profiles = configuration(document, "sofia.conf").findall("./profiles/profile")
    assert len(profiles) == 1
    settings = params(profiles[0])
    acl = settings["apply-inbound-acl"]
    default, allowed = acl_nodes(document, acl)
    assert default == "deny"
    assert allowed == {f"{a}/32" for a in KAMAILIO}
    # Without auth-calls an ACL miss is a 403, not a digest challenge anyone could answer.
    assert settings["auth-calls"] == "false"
    assert settings["accept-blind-auth"] == "false"
    assert settings["disable-register"] == "true"
    assert settings["accept-blind-reg"] == "false"
    private = inventory.hostvars[host]["sipio_private_ip"]
    assert settings["sip-ip"] == settings["ext-sip-ip"] == private
    assert settings["rtp-ip"] == settings["ext-rtp-ip"] == private
    assert settings["sip-port"] == "5080"
    # Behind rtpengine: offered codec order wins, RFC 2833 digits, no RTP latching.
    assert settings["inbound-codec-negotiation"] == "generous"
    assert settings["dtmf-type"] == "rfc2833"
    assert settings["disable-rtp-auto-adjust"] == "true"
    assert set(settings["inbound-codec-prefs"].split(",")) >= {"PCMU", "PCMA"}


def test_event_socket_listens_privately_with_the_vaulted_password_and_its_acl(
    inventory: Inventory, node: tuple[str, ET.Element]
) -> None:
    host, document = node
    settings = params(configuration(document, "event_socket.conf"))
    private = inventory.hostvars[host]["sipio_private_ip"]
    assert settings["listen-ip"] == private
    assert settings["listen-port"] == "8021"
    assert settings["password"] == VAULTED["freeswitch_esl_password"]
    assert settings["apply-inbound-acl"] == "event_socket"
    default, allowed = acl_nodes(document, "event_socket")
    assert default == "deny"
    controllers = {c.split(":")[0] for c in CONTROLLERS}
    assert allowed == {f"{a}/32" for a in controllers | {private}}
    assert not allowed & {f"{a}/32" for a in KAMAILIO}  # the SIP edge never gets a shell


def test_event_socket_password_is_escaped_not_injected() -> None:
    password = "a&b<c>\"d'e"
    inventory = Inventory(
        extra_vars={"sipio_deploy_secrets": {**VAULTED, "freeswitch_esl_password": password}}
    )
    text = inventory.render("freeswitch", "autoload_configs/event_socket.conf.xml.j2", "media1")
    settings = params(ET.fromstring(text))
    assert settings["password"] == password
    assert settings["apply-inbound-acl"] == "event_socket"


def test_no_well_known_default_password_anywhere(inventory: Inventory) -> None:
    texts = {
        str(p.relative_to(ANSIBLE_DIR)): p.read_text()
        for p in ANSIBLE_DIR.rglob("*")
        if p.is_file() and ".build" not in p.parts
    }
    for host in MEDIA_NODES:
        texts.update({f"{host}:{k}": v for k, v in rendered_tree(inventory, host).items()})
        texts[f"{host}:fs_cli.conf"] = inventory.render("freeswitch", "fs_cli.conf.j2", host)
    for name, text in texts.items():
        assert "cluecon" not in text.lower(), name
        assert not re.search(r"default_password|value=\"1234\"", text), name
    defaults = (ROLES_DIR / "freeswitch/defaults/main.yml").read_text()
    assert not re.search(r"^freeswitch_esl_password:", defaults, re.MULTILINE)


def test_names_the_controller_uses_exist_in_the_configuration(
    inventory: Inventory, node: tuple[str, ET.Element]
) -> None:
    """esl/apps.py builds application arguments from MediaConfig: the profile in bridge dial
    strings, the MOH stream, the conference profile, the TTS engine's module."""
    host, document = node
    media = MediaConfig()
    profile = configuration(document, "sofia.conf").find("./profiles/profile")
    assert profile is not None and profile.get("name") == media.sofia_profile
    streams = configuration(document, "local_stream.conf").findall("directory")
    assert media.moh == f"local_stream://{streams[0].get('name')}" and len(streams) == 1
    conference = configuration(document, "conference.conf").findall("./profiles/profile")
    assert [p.get("name") for p in conference] == [media.conference_profile]
    loaded = {m.get("module") for m in configuration(document, "modules.conf").iter("load")}
    assert f"mod_{media.tts_engine}" in loaded
    assert {
        "mod_sofia", "mod_event_socket", "mod_dptools", "mod_dialplan_xml", "mod_conference",
        "mod_local_stream", "mod_sndfile", "mod_tone_stream", "mod_commands", "mod_say_en",
    } <= loaded  # fmt: skip
    variables = inventory.hostvars[host]
    assert variables["freeswitch_media_root"] == media.media_root
    assert variables["freeswitch_recordings_root"] == media.recordings_root


def test_fs_cli_reaches_the_private_listener(inventory: Inventory) -> None:
    text = inventory.render("freeswitch", "fs_cli.conf.j2", "media2")
    entries = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition("=>") for line in text.splitlines())
        if _ == "=>"
    )
    assert entries == {
        "host": "10.20.0.22",
        "port": "8021",
        "password": VAULTED["freeswitch_esl_password"],
    }


def test_rendering_fails_on_a_missing_variable() -> None:
    """StrictUndefined, as Ansible: a template never renders an empty value silently."""
    inventory = Inventory(extra_vars={"sipio_deploy_secrets": {}})
    with pytest.raises(UndefinedError, match=r"freeswitch_esl_password"):
        inventory.render("freeswitch", "autoload_configs/event_socket.conf.xml.j2", "media1")


def _canonical(element: ET.Element) -> str:
    clone = copy.deepcopy(element)
    for e in clone.iter():
        e.tail = (e.tail or "").strip() or None
        e.text = (e.text or "").strip() or None
    return ET.tostring(clone, encoding="unicode")


def rendered_by_ansible_equals_plain_render(directory: Path, inventory: Inventory) -> None:
    """Shared with test_playbook: the files Ansible wrote are the ones these tests checked."""
    for host in MEDIA_NODES:
        for name, text in rendered_tree(inventory, host).items():
            written = (directory / host / "freeswitch" / name).read_text()
            assert _canonical(ET.fromstring(written)) == _canonical(ET.fromstring(text)), name
