from slimvision.cli import main

main()
