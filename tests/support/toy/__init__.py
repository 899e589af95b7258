"""A toy platform, a toy fault and its Chaos Toolkit module: what docs/extending.md walks
through, small enough to read in one sitting and real enough to run through chaoslib."""
