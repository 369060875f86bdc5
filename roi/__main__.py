from roi.cli import main

main()
