from covalidator.runtime.cli import main

main()
