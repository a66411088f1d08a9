"""Stand-ins for the subnet, for local runs and tests: embedded Redis, throwaway wallets,
simulated miners and WhisperX instances. These are simulations, not real models."""
