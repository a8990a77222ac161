import os
import re

from snakemake.utils import validate

from audioprobe import config as apconfig
from audioprobe.datasets.naming import audio_files
from audioprobe.io.atomic import check_results_links
from audioprobe.models import WeightsSettingError, check_weights_setting, layer_names
from audioprobe.models import registry

SCHEMA = "../workflow/schemas/config.schema.yaml"
GENERATED_KINDS = ("maas-synth", "commands-synth")

apconfig.check_renamed(config)
config_schema = apconfig.load_schema(workflow.source_path(SCHEMA))
apconfig.coerce_strings(config, config_schema)  # --config passes nested values as strings
apconfig.fill_defaults(config, config_schema)
apconfig.check_schema(config, config_schema)  # the same check as validate's, with errors naming the key
validate(config, SCHEMA, set_default=True)
apconfig.check_references(config, layer_names)
apconfig.check_targets(config)
apconfig.check_latent(config, layer_names)
apconfig.check_metamers(config, layer_names)
apconfig.check_dissect(config, layer_names)
apconfig.check_storage(config, layer_names)
apconfig.check_compare(config)
for warning in apconfig.check_circular(config):
    logger.warning(warning)


def names_of_kind(section, *kinds):
    return [name for name, entry in config[section].items() if entry["kind"] in kinds]


def one_of(names):
    """A wildcard constraint matching exactly these names (or nothing)."""
    return "|".join(map(re.escape, names)) if names else "(?!)"


# --- datasets --------------------------------------------------------------------------------------------


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


DOWNLOADED_KINDS = ("esc50",)


def dataset_root(name):
    entry = config["datasets"][name]
    if entry["kind"] in GENERATED_KINDS:
        return f"results/datasets/{name}/audio"
    if entry["kind"] in DOWNLOADED_KINDS:
        return f"resources/datasets/{name}/{entry['kind']}"
    return entry["root"]


def targets():
    return names_of_kind("datasets", "target")


def target_responses_file(wildcards):
    return config["datasets"][wildcards.dataset]["responses"]


def target_stimuli_manifest(wildcards):
    return f"results/datasets/{config['datasets'][wildcards.dataset]['stimuli']}/manifest.csv"


def target_settings(wildcards):
    entry = config["datasets"][wildcards.dataset]
    return {key: entry[key] for key in ("stimuli", "axes", "id_key", "responses_key")}


def esc50_archive(wildcards):
    entry = config["datasets"][wildcards.dataset]
    return entry["archive"] or f"resources/datasets/{wildcards.dataset}/ESC-50.zip"


def dataset_key(wildcards):
    return f"datasets.{wildcards.dataset}"


def dataset_root_of(wildcards):
    return dataset_root(wildcards.dataset)


def check_folder_datasets():
    for name in names_of_kind("datasets", "folder"):
        root = config["datasets"][name]["root"]
        if not os.path.isdir(root):
            raise WorkflowError(f"datasets.{name}.root: {root} is not a folder")


check_folder_datasets()
check_results_links()


def manifest_inputs(wildcards):
    """Generated audio, or every audio file (and label table) of a folder dataset, so edits rerun ingest."""
    entry = config["datasets"][wildcards.dataset]
    if entry["kind"] in GENERATED_KINDS + DOWNLOADED_KINDS:
        return {"audio": dataset_root(wildcards.dataset)}
    root = entry["root"]
    inputs = {"audio": [os.path.join(root, path) for path in audio_files(root)]}
    if entry["labels"].get("scheme") == "csv" and "csv" in entry["labels"]:
        inputs["labels"] = os.path.join(root, entry["labels"]["csv"])
    return inputs


def clip_audio(wildcards):
    """What extraction reads besides the manifest: generated audio (folder datasets are read in place)."""
    if config["datasets"][wildcards.dataset]["kind"] in GENERATED_KINDS + DOWNLOADED_KINDS:
        return dataset_root(wildcards.dataset)
    return []


# --- models ----------------------------------------------------------------------------------------------


def model_spec(name):
    return registry.spec_of(config["models"][name]["kind"])


def model_weights(name):
    """The weights the model's job loads: a configured file or hub handle, the path a download rule writes, or
    the file inside an installed package; None when the job finds them itself."""
    entry = config["models"][name]
    return model_spec(name).weights_file(name, entry) or entry.get("weights")


def model_entry(name):
    """A model's entry with the keys its family inherits from the rest of the config (registry: inherits)."""
    return registry.completed(config["models"][name], config)


def network_config(name):
    """A model's entry without the keys that do not change its outputs (class names, download URLs)."""
    return registry.network_config(model_entry(name))


def model_env(wildcards):
    """The conda env of the jobs that run the model (its framework's env file)."""
    return f"../{model_spec(wildcards.model).env_file}"


def model_env_file(name):
    return f"../{model_spec(name).env_file}"


def model_setting(key):
    def setting(wildcards):
        return config["models"][wildcards.model][key]

    return setting


def downloading_models():
    return [name for name in config["models"] if model_spec(name).downloads]


def downloaded_files():
    return sorted({download.file for name in downloading_models() for download in model_spec(name).downloads})


def download_setting(field):
    """The download's URL or sha256 (from the model's config), or the config key of the local file that
    replaces it (for the error that says what to do offline)."""

    def setting(wildcards):
        entry = config["models"][wildcards.model]
        download = next(d for d in model_spec(wildcards.model).downloads if d.file == wildcards.file)
        key = getattr(download, field)
        return f"models.{wildcards.model}.{key}" if field == "local_key" else entry[key]

    return setting


def weights_input(name):
    """The weights file as an input, or nothing for weights loaded at run time (a TF Hub handle, a SavedModel
    folder)."""
    return model_spec(name).weights_file(name, config["models"][name]) or []


def weights_source(model):
    """Where extraction loads weights from: the input file, or the configured TF Hub handle."""

    def source(wildcards, input):
        return input.weights if input.weights else model_weights(model)

    return source


def check_model_weights():
    """Each models.<name>.weights is null, an http(s) hub handle, or an existing weights file or SavedModel."""
    for name, entry in config["models"].items():
        try:
            check_weights_setting(name, entry)
        except WeightsSettingError as err:
            raise WorkflowError(str(err)) from None


check_model_weights()


def inherit_profile_settings(family, rule_name):
    """A profile's set-resources for ``family`` (e.g. extract_activations) apply to ``rule_name``
    (extract_activations_<model>), unless the profile names that one itself: one profile line serves every
    model. The parsed set-resources are snakemake's own (9.27; pinned in pyproject.toml). A profile's groups
    are not known while the Snakefile is read, so they cannot be inherited: the SLURM profile names each
    model's extraction rule under groups."""
    resources = workflow.resource_settings._parsed_overwrite_resources
    if family in resources:
        resources.setdefault(rule_name, resources[family])


def run_layers(model):
    layers = apconfig.layers_for(config["activations"]["layers"], model)
    return layer_names(config["models"][model]) if layers == "all" else list(layers)


# --- activations -----------------------------------------------------------------------------------------

def extraction_settings(model):
    """Everything extraction's result depends on, so a change to any of it reruns extraction. The layers
    stored pooled appear (as stored_pooled: layer -> axes and stat) only when there are some, so the
    settings, and what they rerun, of a config without any stay as they were."""

    def settings(wildcards):
        general = {k: v for k, v in config["activations"].items() if k not in ("runs", "pool", "layers", "store")}
        clip_seconds = config["datasets"][wildcards.dataset]["clip_seconds"]
        pooled = {layer: stored_pooling(layer) for layer in run_layers(model) if stored_pooling(layer)}
        extra = {"stored_pooled": pooled} if pooled else {}
        return {**general, "clip_seconds": clip_seconds, "model": network_config(model), **extra}

    return settings


def stored_pooling(layer):
    """How ``layer`` is pooled at extraction ({"axes": [...], "stat": ...}), or None when it is not pooled
    (stored full, or projected without pooling first: {project: K})."""
    how = config["activations"]["store"].get(layer, "full")
    pool = config["activations"]["pool"]
    axes = pool["axes"] if how == "pooled" else how.get("pool", []) if isinstance(how, dict) else []
    return {"axes": list(axes), "stat": pool["stat"]} if axes else None


def stored_projection(layer):
    """How ``layer`` is projected at extraction ({"components": K, "seed": s}), or None when it is not."""
    how = config["activations"]["store"].get(layer, "full")
    if not (isinstance(how, dict) and "project" in how):
        return None
    return {"components": how["project"], "seed": how.get("seed", 0)}


def stored_settings(model):
    """extraction_settings with the layers stored projected (stored_projected: layer -> components and seed),
    only when there are some, so the settings, and what they rerun, of a config without any stay as they
    were."""
    general = extraction_settings(model)

    def settings(wildcards):
        projected = {layer: stored_projection(layer) for layer in run_layers(model) if stored_projection(layer)}
        return {**general(wildcards), **({"stored_projected": projected} if projected else {})}

    return settings


def stored_form_of(wildcards):
    """How the layer file pool_activations reads was stored: stored_pooling's value (None when full), with
    its projection added for a layer stored projected (so that the others' params, and what they rerun,
    stay as they were)."""
    pooling, projection = stored_pooling(wildcards.layer), stored_projection(wildcards.layer)
    if projection is None:
        return pooling
    return {**(pooling or {"axes": [], "stat": config["activations"]["pool"]["stat"]}), "project": projection}


def stored_pooling_of(wildcards):
    return stored_pooling(wildcards.layer)


def runs():
    return [(run["model"], run["dataset"]) for run in config["activations"]["runs"]]


def layer_files(model, dataset, folder=""):
    return [f"results/activations/{model}/{dataset}/{folder}{layer}.h5" for layer in run_layers(model)]


def foundation_outputs():
    outputs = [f"results/datasets/{name}/manifest.csv" for name in config["datasets"] if name not in targets()]
    outputs += [f"results/datasets/{name}/responses.h5" for name in targets()]
    for model, dataset in runs():
        outputs += layer_files(model, dataset) + layer_files(model, dataset, "pooled/")
        outputs.append(f"results/activations/{model}/{dataset}/summary.csv")
    return outputs


def layer_files_of(wildcards):
    return layer_files(wildcards.model, wildcards.dataset)


def layers_of(wildcards):
    return run_layers(wildcards.model)


# --- Study 1: latent disentanglement ---------------------------------------------------------------------


def latent_runs():
    return [(run["model"], run["dataset"]) for run in config["latent"]["runs"]]


def latent_setting(key):
    def setting(wildcards):
        return config["latent"][key]

    return setting


def latent_keys(section, *keys):
    """Only these keys of a latent section, so other keys of it do not rerun the rule."""

    def setting(wildcards):
        return {key: config["latent"][section][key] for key in keys}

    return setting


def projection_files(wildcards):
    return [
        f"results/latent/{wildcards.model}/{wildcards.dataset}/projection/{layer}.h5"
        for layer in run_layers(wildcards.model)
    ]


def fold_projection_files(wildcards):
    return [
        f"results/latent/{wildcards.model}/{wildcards.dataset}/projection_folds/{layer}.h5"
        for layer in run_layers(wildcards.model)
    ]


def projection_mem_mb(wildcards, input):
    """Memory for fitting projections, scaled with the layer file's size (a float16 file holds half the bytes of
    its float32 values) and at most latent.projection_memory_mb (see the package's estimate)."""
    from audioprobe.latent.projection import projection_mem_mb as estimate

    return estimate(input.size_mb, compressed=config["activations"]["compression"] != "none",
                    budget_mb=config["latent"]["projection_memory_mb"],
                    itemsize=2 if config["activations"]["dtype"] == "float16" else 4)


def flow_layer_of(wildcards):
    """The flow's layer: fixed in the config, or the decoding peak (known once decoding has run)."""
    fixed = apconfig.flow_layer(config, wildcards.model, layer_names)
    if fixed:
        return fixed
    from audioprobe.latent.steps import best_layer

    continuable = registry.continuable(config["models"][wildcards.model])
    return best_layer(checkpoints.decode_layers.get(**wildcards).output.summary, continuable)


def flow_layer_file(kind):
    """The flow layer's projection ("projection") or activations ("activations") as an input."""

    def path(wildcards):
        layer = flow_layer_of(wildcards)
        if kind == "projection":
            return f"results/latent/{wildcards.model}/{wildcards.dataset}/projection/{layer}.h5"
        return f"results/activations/{wildcards.model}/{wildcards.dataset}/{layer}.h5"

    return path


def model_weights_of(wildcards):
    return weights_input(wildcards.model)


def model_config_of(wildcards):
    return network_config(wildcards.model)


def weights_source_of(wildcards, input):
    return input.weights if input.weights else model_weights(wildcards.model)


def latent_outputs():
    outputs = []
    for model, dataset in latent_runs():
        base = f"results/latent/{model}/{dataset}"
        outputs += [
            f"{base}/decoding/summary.csv",
            f"{base}/decoding/null.csv",
            f"{base}/decoding/tests.csv",
            f"{base}/decoding/decoding.png",
            f"{base}/flow/flow.pt",
            f"{base}/flow/curve.png",
            f"{base}/figure1.png",
            f"{base}/manipulation_check.csv",
            f"{base}/transfer/statistics.csv",
            f"{base}/transfer/figure2.png",
        ]
    return outputs


# --- Study 2: model metamers -------------------------------------------------------------------------------


def metamer_setting(key):
    def setting(wildcards):
        return config["metamers"][key]

    return setting


def dataset_clip_seconds(wildcards):
    return config["datasets"][wildcards.dataset]["clip_seconds"]


def keyword_architectures():
    return list(config["metamers"]["architectures"])


def pretrained_metamer_layers():
    """{model: layers} of the pretrained models whose layers get metamers too (apconfig.pretrained_metamers)."""
    return apconfig.pretrained_metamers(config)


def metamer_networks():
    return keyword_architectures() + list(pretrained_metamer_layers())


def metamer_networks_of(wildcards):
    return metamer_networks()


def keyword_model_settings(wildcards):
    settings = {
        "frontend": config["metamers"]["frontend"],
        "groups": config["metamers"]["groups"],
        "sizes": config["metamers"]["sizes"],
    }
    if hasattr(wildcards, "arch"):
        settings["arch"] = wildcards.arch
    return settings


def keyword_weights(wildcards):
    return [
        f"results/metamers/{wildcards.dataset}/models/{arch}/weights.weights.h5"
        for arch in keyword_architectures()
    ]


def keyword_evaluations(wildcards):
    return [
        f"results/metamers/{wildcards.dataset}/models/{arch}/evaluation.json"
        for arch in keyword_architectures()
    ]


def metamer_network_inputs(wildcards):
    if wildcards.net in keyword_architectures():
        base = f"results/metamers/{wildcards.dataset}/models/{wildcards.net}"
        return {"weights": f"{base}/weights.weights.h5", "evaluation": f"{base}/evaluation.json"}
    return {"weights": weights_input(wildcards.net)}


def metamer_network_settings(wildcards):
    if wildcards.net in keyword_architectures():
        return {"kind": "keyword", "arch": wildcards.net, **keyword_model_settings(wildcards)}
    return {
        "kind": "pretrained",
        "model": wildcards.net,
        "model_config": network_config(wildcards.net),
        "weights": model_weights(wildcards.net),
        "layers": pretrained_metamer_layers()[wildcards.net],
    }


def metamer_env(wildcards):
    """The keyword networks' jobs run in the TensorFlow env; a pretrained model's in its framework's."""
    if wildcards.net in keyword_architectures():
        return "../envs/tensorflow.yaml"
    return model_env_file(wildcards.net)


def metamer_validations(wildcards):
    return [f"results/metamers/{wildcards.dataset}/{net}/validation.csv" for net in metamer_networks()]


def metamer_wav_folders(wildcards):
    return [f"results/metamers/{wildcards.dataset}/{net}/wav" for net in metamer_networks()]


def response_files():
    folder = config["metamers"]["responses"]
    if not folder:
        return []
    if not os.path.isdir(folder):
        raise WorkflowError(f"metamers.responses: {folder} is not a folder of response CSVs")
    return sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".csv"))


def listening_responses(wildcards):
    return response_files()


def metamer_files(wildcards):
    return [f"results/metamers/{wildcards.dataset}/{net}/metamers.h5" for net in metamer_networks()]


def keyword_architectures_of(wildcards):
    return keyword_architectures()


def behaviour_outputs():
    """People's confusions against the networks': with responses and keyword networks to answer."""
    dataset = config["metamers"]["dataset"]
    if not (dataset and response_files() and keyword_architectures()):
        return []
    return [f"results/compare/{dataset}/behaviour.csv"]


def metamer_outputs():
    dataset = config["metamers"]["dataset"]
    if not dataset:
        return []
    base = f"results/metamers/{dataset}"
    outputs = [
        f"{base}/models/parameters.csv",
        f"{base}/models/accuracy.csv",
        f"{base}/pass_rates.csv",
        f"{base}/listening_test",
    ]
    outputs += [f"{base}/{net}/metamers.png" for net in metamer_networks()]
    if response_files():
        outputs.append(f"{base}/listening_results/accuracy.csv")
    return outputs


# --- Study 3: audio network dissection ---------------------------------------------------------------------


def dissect_runs():
    return [(run["model"], run["dataset"]) for run in config["dissect"]["runs"]]


def dissect_layers(model):
    layers = apconfig.layers_for(config["dissect"]["layers"], model)
    return run_layers(model) if layers == "all" else list(layers)


def dissected_layers():
    """Every layer some Study 3 run dissects (never "head", the name of the trained head's files)."""
    return sorted({layer for model, _ in dissect_runs() for layer in dissect_layers(model)})


def dissect_layers_of(wildcards):
    return dissect_layers(wildcards.model)


def dissect_setting(*keys):
    """Only these keys of the dissect section, so a change elsewhere in it does not rerun the rule."""

    def setting(wildcards):
        return {key: config["dissect"][key] for key in keys}

    return setting


def closed_concepts_setting(wildcards):
    """The closed-set matching's keys, with only the two pruning functions it also scores: the pruning's
    other settings (top, seed, random_seeds, pool) do not rerun it."""
    dissect = config["dissect"]
    return {"similarity": dissect["similarity"], "methods": dissect["methods"],
            "pruning": {key: dissect["pruning"][key] for key in ("db_function", "tab_function")}}


LLM_KEYS = ("gguf", "context", "seed", "threads", "summary_tokens", "summary_stop", "repeat_penalty")


def llm_setting(prompt):
    """The LLM settings and the one prompt a rule uses, so editing another prompt does not rerun it."""

    def setting(wildcards):
        llm = config["dissect"]["llm"]
        return {**{key: llm[key] for key in LLM_KEYS}, "prompt": llm["prompts"][prompt],
                "cache": config["dissect"]["cache"]}

    return setting


def simulation_llm_setting(wildcards):
    """The LLM settings and the two simulation prompts (the few-shot part and each clip's question)."""
    prompts = config["dissect"]["llm"]["prompts"]
    return {**llm_setting("simulation")(wildcards), "line": prompts["simulation_line"]}


def simulation_setting(wildcards):
    """What the simulated predictions depend on: not the metrics' quantile or the bootstrap."""
    scoring = config["dissect"]["scoring"]
    return {"simulation": scoring["simulation"], "seed": scoring["seed"]}


def scoring_setting(wildcards):
    """The scoring's settings and the concept encoder that presence is measured with."""
    return {**config["dissect"]["scoring"], "concepts": config["dissect"]["concepts"]}


def dissect_base(wildcards):
    return f"results/dissect/{wildcards.model}/{wildcards.dataset}"


def neuron_files(wildcards):
    base = dissect_base(wildcards)
    return [f"{base}/neurons/{layer}.h5" for layer in dissect_layers(wildcards.model)] + [f"{base}/neurons/head.h5"]


def heldout_files(wildcards):
    base = dissect_base(wildcards)
    return [f"{base}/heldout/{layer}.h5" for layer in dissect_layers(wildcards.model)] + [f"{base}/heldout/head.h5"]


def last_layer_file(wildcards):
    layer = dissect_layers(wildcards.model)[-1]
    return f"results/activations/{wildcards.model}/{wildcards.dataset}/{layer}.h5"


def first_layer_file(wildcards):
    layer = dissect_layers(wildcards.model)[0]
    return f"results/activations/{wildcards.model}/{wildcards.dataset}/{layer}.h5"


def icl_summaries(wildcards):
    """The calibrated summaries (the paper), or the uncalibrated ones (dissect.icl.summary: highly)."""
    name = "calibrated" if config["dissect"]["icl"]["summary"] == "calibrated" else "summaries"
    return f"{dissect_base(wildcards)}/{name}.csv"


def tagger_inputs(wildcards):
    """The tagger's weights and class map when the tags captioner is used."""
    captions = config["dissect"]["captions"]
    if captions["backend"] != "tags":
        return {}
    tagger = apconfig.tagger_for(config, wildcards.model)
    inputs = {"weights": weights_input(tagger)}
    if class_map_path(tagger):  # a family whose tags ship with it (musicnn) has no class-map file
        inputs["class_map"] = class_map_path(tagger)
    return inputs


def tagger_env(wildcards):
    """The tags captioner runs its tagger model, in that model's framework's env."""
    captions = config["dissect"]["captions"]
    if captions["backend"] == "tags":
        return model_env_file(apconfig.tagger_for(config, wildcards.model))
    return "../envs/tensorflow.yaml"


def caption_settings(wildcards):
    """The captioner and everything its captions depend on."""
    captions = dict(config["dissect"]["captions"])
    if captions["backend"] == "tags":
        tagger = apconfig.tagger_for(config, wildcards.model)
        captions["tagger"] = tagger
        captions["tagger_config"] = network_config(tagger)
        captions["tagger_weights"] = model_weights(tagger)
    captions["label"] = config["dissect"]["label"]
    captions["target_model"] = wildcards.model
    captions["cache"] = config["dissect"]["cache"]
    return captions


def class_map_path(model):
    return model_spec(model).class_names(model, config["models"][model])


def pos_model(wildcards):
    return config["dissect"]["open_concepts"]["pos_model"]


def concept_file(wildcards):
    path = config["dissect"]["concepts"]["file"]
    return [path] if path else []


def dissect_outputs():
    outputs = []
    for model, dataset in dissect_runs():
        base = f"results/dissect/{model}/{dataset}"
        outputs += [
            f"{base}/closed_concepts.csv",
            f"{base}/open_concepts.csv",
            f"{base}/last_layer.csv",
            f"{base}/last_layer.png",
            f"{base}/pruning.csv",
            f"{base}/pruning.png",
            f"{base}/pos_ablation.csv",
            f"{base}/pos_ablation.png",
            f"{base}/interpretability.csv",
            f"{base}/interpretability.png",
            f"{base}/explanation_scores.csv",
            f"{base}/explanation_summary.csv",
            f"{base}/explanation_scores.png",
        ]
    return outputs


# --- comparisons -----------------------------------------------------------------------------------------


def compare_run(dataset):
    return next(run for run in config["compare"]["runs"] if run["dataset"] == dataset)


def compared_models(dataset):
    return compare_run(dataset)["models"]


def model_pairs(models):
    """Each model with itself and with every other, each pair once, in name order: adding a model to a run adds
    only its own pairs, and the files of the others keep their names."""
    names = sorted(models)
    return [(a, b) for i, a in enumerate(names) for b in names[i:]]


def compare_setting(key):
    def setting(wildcards):
        return config["compare"][key]

    return setting


def cka_pair_inputs(wildcards):
    return {"a": layer_files(wildcards.model_a, wildcards.dataset, "pooled/"),
            "b": layer_files(wildcards.model_b, wildcards.dataset, "pooled/")}


def cka_pair_layers(wildcards):
    return {"a": run_layers(wildcards.model_a), "b": run_layers(wildcards.model_b)}


def pooled_layer_files_of(wildcards):
    return layer_files(wildcards.model, wildcards.dataset, "pooled/")


def relative_depth_of(wildcards):
    """Each cached layer's index in the model's full list of layers over the last index (0 input side, 1 last)."""
    every = layer_names(config["models"][wildcards.model])
    return {layer: every.index(layer) / max(len(every) - 1, 1) for layer in run_layers(wildcards.model)}


def compared_models_of(wildcards):
    return compared_models(wildcards.dataset)


def target_tables(kind):
    def tables(wildcards):
        return [f"results/compare/{wildcards.dataset}/{wildcards.target}/{kind}/{model}.csv"
                for model in compared_models(wildcards.dataset)]

    return tables


def label_rsa_tables(wildcards):
    return [f"results/compare/{wildcards.dataset}/label_rsa/{m}.csv" for m in compared_models(wildcards.dataset)]


def compare_outputs():
    outputs = []
    for run in config["compare"]["runs"]:
        base, models = f"results/compare/{run['dataset']}", run["models"]
        for a, b in model_pairs(models):
            outputs += [f"{base}/cka/{a}/{b}.csv", f"{base}/cka/{a}/{b}.png"]
        outputs += [f"{base}/label_rsa/{model}.csv" for model in models]
        outputs.append(f"{base}/label_rsa/profiles.png")
        for target in run["targets"]:
            outputs += [f"{base}/{target}/{kind}/{model}.csv" for kind in ("rsa", "encoding") for model in models]
            outputs.append(f"{base}/{target}/profiles.png")
    return outputs + behaviour_outputs()
