export { type Config, type ProfileConfig, configSchema, DEFAULT_CONFIG_PATH, defaultConfig, logLevels } from './schema';
export { ConfigError, type ConfigOverrides, loadConfig, type LoadedConfig, type LoadOptions } from './load';
export { renderConfigToml, renderReferenceToml } from './reference';
export { CONFIG_FLAGS_USAGE, parseConfigFlags } from './flags';
