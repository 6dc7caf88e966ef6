package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/assetctl/assetctl/internal/config"
)

// loadSettings reads assetctl.yaml for the site named by args (default
// ".") and applies the section that section picks, with the ASSETCTL_* environment, beneath
// cmd's flags. outFromUser reports whether --out was given as a flag or
// environment variable: only a value from the file is relative to the
// file's directory.
func loadSettings(e *env, cmd *cobra.Command, args []string, section func(*config.File) any) (site string, file *config.File, outFromUser bool, err error) {
	site = "."
	if len(args) == 1 {
		site = args[0]
	}
	file, err = config.Load(e.configPath, site)
	if err != nil {
		return "", nil, false, err
	}
	outFromUser = cmd.Flags().Changed("out") || os.Getenv(config.EnvName("out")) != ""
	if err := config.Apply(cmd.Flags(), section(file), file.Path, os.Getenv); err != nil {
		return "", nil, false, err
	}
	return site, file, outFromUser, nil
}
